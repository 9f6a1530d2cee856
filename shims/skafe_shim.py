"""skafe script shim for Python: runs one rule script's check(event).

Protocol: JSON lines. In on stdin: {"t":"call","id":N,"event":{...}} and
{"t":"fetched",...} answers. Out on the original stdout: ready/fatal, one
result per call in call order, log lines and fetch requests. The script's own
print() goes to stderr so it cannot break the protocol.
"""
import base64
import json
import os
import sys

proto = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
sys.stdout = sys.stderr
pending = []  # calls that arrived while a fetch waited for its answer
_rid = [0]


def send(obj):
    proto.write(json.dumps(obj, separators=(",", ":")) + "\n")
    proto.flush()


class SkafeError(Exception):
    pass


class _Skafe:
    def log(self, msg):
        send({"t": "log", "msg": str(msg)})

    def fetch_file(self, path):
        """Ask the agent that sent the event for a file: {'bytes': b'...', 'sha256': '...'}."""
        _rid[0] += 1
        rid = _rid[0]
        send({"t": "fetch", "rid": rid, "path": str(path)})
        while True:
            line = sys.stdin.readline()
            if not line:
                sys.exit(0)
            msg = json.loads(line)
            if msg.get("t") == "fetched" and msg.get("rid") == rid:
                if not msg["ok"]:
                    raise SkafeError(msg["error"])
                return {"bytes": base64.b64decode(msg["data"]), "sha256": msg["sha256"], "size": msg["size"]}
            pending.append(msg)

    fetchFile = fetch_file


skafe = _Skafe()
sys.modules["skafe"] = skafe  # `import skafe` works in scripts too


def main():
    script = sys.argv[1]
    ns = {"__name__": "skafe_script", "__file__": script, "skafe": skafe}
    try:
        with open(script, encoding="utf-8") as f:
            code = compile(f.read(), script, "exec")
        exec(code, ns)
        check = ns.get("check")
        if not callable(check):
            raise SkafeError("the script defines no check(event) function")
    except BaseException as e:  # a broken script must be reported, not crash silently
        send({"t": "fatal", "error": "%s: %s" % (type(e).__name__, e)})
        return
    send({"t": "ready"})
    while True:
        if pending:
            msg = pending.pop(0)
        else:
            line = sys.stdin.readline()
            if not line:
                return
            msg = json.loads(line)
        if msg.get("t") != "call":
            continue
        try:
            send({"t": "result", "id": msg["id"], "ok": True, "value": bool(check(msg["event"]))})
        except Exception as e:
            send({"t": "result", "id": msg["id"], "ok": False, "error": "%s: %s" % (type(e).__name__, e)})


main()
