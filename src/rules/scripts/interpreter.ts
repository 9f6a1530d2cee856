import { spawn, type ChildProcess } from 'node:child_process';
import { Worker } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import type { ScriptSpec } from '../load.js';
import type { FromInterp, ToInterp } from './protocol.js';

// One long-lived interpreter running one script: a child process (Ruby,
// Python) fed JSON lines through the shim in shims/, or a worker thread (JS).

const here = path.dirname(fileURLToPath(import.meta.url));
/** shims/ at the package root: dist/src/rules/scripts → ../../../../shims. */
export const SHIM_DIR = path.resolve(here, '..', '..', '..', '..', 'shims');

// A line from an interpreter longer than this is a protocol break: the
// interpreter is killed rather than buffering without end.
const MAX_LINE = 16 * 1024 * 1024;
// Bounded stderr relay: a chatty script cannot flood the server log.
const MAX_STDERR_LINES = 50;

export interface Interpreter {
  send(msg: ToInterp): void;
  /** Send a call; `encoded`: event is its JSON text, passed on without parsing. */
  call(id: number, event: unknown, encoded: boolean): void;
  kill(): void;
  onMessage: (m: FromInterp) => void;
  onExit: (why: string) => void;
  onStderr: (line: string) => void;
}

export interface InterpreterCommands {
  ruby: string;
  python: string;
}

export const DEFAULT_COMMANDS: InterpreterCommands = { ruby: 'ruby', python: 'python3' };

export function startInterpreter(spec: ScriptSpec, cmds: InterpreterCommands = DEFAULT_COMMANDS): Interpreter {
  return spec.lang === 'js' ? workerInterpreter(spec) : processInterpreter(spec, cmds);
}

function processInterpreter(spec: ScriptSpec, cmds: InterpreterCommands): Interpreter {
  const [cmd, shim] = spec.lang === 'ruby' ? [cmds.ruby, 'skafe_shim.rb'] : [cmds.python, 'skafe_shim.py'];
  const args = spec.lang === 'python' ? ['-u', path.join(SHIM_DIR, shim), spec.file] : [path.join(SHIM_DIR, shim), spec.file];
  const child: ChildProcess = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], cwd: path.dirname(spec.file) });
  let exited = false;
  // Lines written in one tick go to the pipe in one write: the pool sends calls in bursts.
  let corked = false;
  const uncork = () => {
    corked = false;
    child.stdin!.uncork();
  };
  const write = (line: string) => {
    if (exited || !child.stdin!.writable) return;
    if (!corked) {
      corked = true;
      child.stdin!.cork();
      process.nextTick(uncork);
    }
    child.stdin!.write(line);
  };
  const it: Interpreter = {
    send(msg) {
      write(JSON.stringify(msg) + '\n');
    },
    call(id, event, encoded) {
      write(encoded ? `{"t":"call","id":${id},"event":${event as string}}\n` : JSON.stringify({ t: 'call', id, event }) + '\n');
    },
    kill() {
      if (!exited) child.kill('SIGKILL');
    },
    onMessage: () => {},
    onExit: () => {},
    onStderr: () => {},
  };
  child.stdin!.on('error', () => {}); // EPIPE after a crash: the exit handler reports it
  let buf = '';
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (chunk: string) => {
    buf += chunk;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line.trim() === '') continue;
      let msg: FromInterp;
      try {
        msg = JSON.parse(line) as FromInterp;
      } catch {
        it.onStderr(`protocol: not JSON from interpreter: ${line.slice(0, 200)}`);
        child.kill('SIGKILL');
        return;
      }
      it.onMessage(msg);
    }
    if (buf.length > MAX_LINE) {
      it.onStderr('protocol: line from interpreter too long');
      child.kill('SIGKILL');
    }
  });
  let errBuf = '';
  let errLines = 0;
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => {
    errBuf += chunk;
    let nl: number;
    while ((nl = errBuf.indexOf('\n')) >= 0) {
      const line = errBuf.slice(0, nl);
      errBuf = errBuf.slice(nl + 1);
      if (errLines++ < MAX_STDERR_LINES) it.onStderr(line);
    }
    if (errBuf.length > 65536) errBuf = '';
  });
  child.on('error', (e) => {
    if (exited) return;
    exited = true;
    it.onExit(`cannot start ${cmd}: ${e.message}`);
  });
  child.on('exit', (code, signal) => {
    if (exited) return;
    exited = true;
    it.onExit(signal ? `killed by ${signal}` : `exited with code ${code}`);
  });
  return it;
}

function workerInterpreter(spec: ScriptSpec): Interpreter {
  // execArgv: [] so the user's script loads as plain ESM/CJS, not through whatever
  // --import/--require hooks the server process itself was started with.
  const w = new Worker(path.join(here, 'js-worker.js'), { workerData: { file: spec.file }, stdout: false, stderr: false, execArgv: [] });
  let exited = false;
  const it: Interpreter = {
    send(msg) {
      if (!exited) w.postMessage(msg);
    },
    call(id, event, encoded) {
      if (!exited) w.postMessage(encoded ? { t: 'call', id, json: event as string } : { t: 'call', id, event });
    },
    kill() {
      if (!exited) void w.terminate();
    },
    onMessage: () => {},
    onExit: () => {},
    onStderr: () => {},
  };
  w.on('message', (m: FromInterp) => it.onMessage(m));
  w.on('error', (e) => it.onStderr(`uncaught: ${e.message}`));
  w.on('exit', (code) => {
    exited = true;
    it.onExit(`worker exited with code ${code}`);
  });
  return it;
}
