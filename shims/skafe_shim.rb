# skafe script shim for Ruby: runs one rule script's check(event).
# Protocol: JSON lines (see skafe_shim.py). The script's own puts goes to
# stderr so it cannot break the protocol.
require 'json'
require 'base64'

PROTO = STDOUT.dup
PROTO.sync = true
$stdout = $stderr
$skafe_pending = []

def skafe_send(obj)
  PROTO.write(JSON.generate(obj) + "\n")
end

module Skafe
  class Error < StandardError; end
  @rid = 0

  def self.log(msg)
    skafe_send({ t: 'log', msg: msg.to_s })
  end

  # Ask the agent that sent the event for a file: { 'bytes' => String, 'sha256' => String }.
  def self.fetch_file(path)
    @rid += 1
    rid = @rid
    skafe_send({ t: 'fetch', rid: rid, path: path.to_s })
    loop do
      line = STDIN.gets
      exit 0 if line.nil?
      msg = JSON.parse(line)
      if msg['t'] == 'fetched' && msg['rid'] == rid
        raise Error, msg['error'] unless msg['ok']
        return { 'bytes' => Base64.decode64(msg['data']), 'sha256' => msg['sha256'], 'size' => msg['size'] }
      end
      $skafe_pending << msg
    end
  end

  class << self
    alias fetchFile fetch_file
  end
end

begin
  load ARGV[0]
  raise Skafe::Error, 'the script defines no check(event) method' unless Object.private_method_defined?(:check) || respond_to?(:check, true)
rescue Exception => e # a broken script must be reported, not crash silently
  skafe_send({ t: 'fatal', error: "#{e.class}: #{e.message}" })
  exit 0
end
skafe_send({ t: 'ready' })

loop do
  msg = $skafe_pending.shift
  if msg.nil?
    line = STDIN.gets
    break if line.nil?
    msg = JSON.parse(line)
  end
  next unless msg['t'] == 'call'
  begin
    skafe_send({ t: 'result', id: msg['id'], ok: true, value: check(msg['event']) ? true : false })
  rescue StandardError, ScriptError => e
    skafe_send({ t: 'result', id: msg['id'], ok: false, error: "#{e.class}: #{e.message}" })
  end
end
