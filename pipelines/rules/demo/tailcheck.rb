# Demo script rule: true when the event executed tail (the original SKAFE demo).
def check(event)
  exe = (event['process'] || {})['executable'] || event['bin']
  !exe.nil? && File.basename(exe.to_s) == 'tail'
end
