#!/usr/bin/env node
// A deterministic fake OpenAI-compatible (and Ollama /api/tags) upstream,
// the test double for the LLM in end-to-end tests and benchmarks.
//
//   node fake_upstream.mjs [--port 0] [--host 127.0.0.1] [--models a,b,c] [--ignore-stdin]
//
// Prints exactly one line, {"port": N}, to stdout once it listens; then runs
// until SIGTERM/SIGINT, or until stdin closes when stdin is a pipe or socket
// (so a dead harness does not leave it running). Plain Node.js, no npm deps.
// See tests/fake-upstream/README.md for the behaviour and control endpoints.

import http from 'node:http';
import crypto from 'node:crypto';
import fs from 'node:fs';

// ---------------------------------------------------------------- options

function parseArgs(argv) {
  const opts = { port: 0, host: '127.0.0.1', models: null, ignoreStdin: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const [flag, inline] = a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    const value = () => (inline !== undefined ? inline : argv[++i]);
    switch (flag) {
      case '--port': opts.port = Number(value()); break;
      case '--host': opts.host = value(); break;
      case '--models': opts.models = value().split(',').map((s) => s.trim()).filter(Boolean); break;
      case '--ignore-stdin': opts.ignoreStdin = true; break;
      case '-h': case '--help':
        process.stderr.write('usage: node fake_upstream.mjs [--port 0] [--host 127.0.0.1] [--models a,b] [--ignore-stdin]\n');
        process.exit(0);
        break;
      default:
        process.stderr.write(`fake_upstream: unknown argument ${a}\n`);
        process.exit(2);
    }
  }
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) {
    process.stderr.write('fake_upstream: bad --port\n');
    process.exit(2);
  }
  return opts;
}

const opts = parseArgs(process.argv.slice(2));
const VERBOSE = !!process.env.FAKE_VERBOSE;

// ------------------------------------------------------------------ state

const DEFAULT_DIGEST = 'sha256:' + 'a'.repeat(64);
const DEFAULT_MODELS = opts.models || (process.env.FAKE_MODELS ? process.env.FAKE_MODELS.split(',') : ['llama3', 'gpt-4o-mini', 'test-model']);
const FAULTS = new Set(['500', '429', 'garbage', 'hang', 'close', 'break_stream', 'bad_json_stream']);
const DEFAULT_FAULT_PATHS = ['/v1/chat/completions', '/v1/completions', '/v1/embeddings'];

function freshConfig() {
  return {
    latency_ms: 0,
    chunk_delay_ms: 0,
    fault: null,
    fault_count: null, // null = always
    fault_paths: DEFAULT_FAULT_PATHS.slice(),
    digests: Object.fromEntries(DEFAULT_MODELS.map((m) => [m, DEFAULT_DIGEST])),
    require_auth: !!process.env.FAKE_REQUIRE_AUTH,
  };
}

function freshStats() {
  return {
    calls: {},
    calls_by_model: {},
    total: 0,
    in_flight: 0,
    max_in_flight: 0,
    faults_injected: 0,
    last_path: null,
    last_headers: {},
    last_authorization: null,
  };
}

let config = freshConfig();
let stats = freshStats();
let lastBody = null; // raw bytes of the last non-control request body
let idCounter = 0;
const created = () => Math.floor(Date.now() / 1000);

// ---------------------------------------------------------------- helpers

function baseModel(model) {
  const m = String(model ?? '');
  return m.endsWith(':latest') ? m.slice(0, -':latest'.length) : m;
}

function digestOf(model) {
  return config.digests[baseModel(model)] ?? DEFAULT_DIGEST;
}

// " rev:<6 hex>" when the model's digest was changed from the default, so a
// new model revision gives new answers.
function revSuffix(model) {
  const d = digestOf(model);
  if (d === DEFAULT_DIGEST) return '';
  const hex = d.startsWith('sha256:') ? d.slice(7) : d;
  return ' rev:' + hex.slice(0, 6);
}

// JSON with sorted object keys, so equal requests hash equally whatever the
// key order the client (or the gateway) used.
function canonical(v) {
  if (Array.isArray(v)) return '[' + v.map(canonical).join(',') + ']';
  if (v && typeof v === 'object') {
    return '{' + Object.keys(v).sort().filter((k) => v[k] !== undefined)
      .map((k) => JSON.stringify(k) + ':' + canonical(v[k])).join(',') + '}';
  }
  return JSON.stringify(v) ?? 'null';
}

// First 8 hex of sha256 of the request without its transport-only fields.
function requestHash(body) {
  const { stream, stream_options, ...rest } = body;
  return crypto.createHash('sha256').update(canonical(rest)).digest('hex').slice(0, 8);
}

function words(s) {
  if (!s) return 0;
  let n = 0;
  for (const w of String(s).split(/\s+/)) if (w) n++;
  return n;
}

function contentText(content) {
  if (content == null) return '';
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    return content.map((p) => (typeof p === 'string' ? p : p && typeof p.text === 'string' ? p.text : '')).join('');
  }
  return String(content);
}

function promptText(p) {
  if (p == null) return '';
  if (typeof p === 'string') return p;
  if (Array.isArray(p)) return p.map((x) => (typeof x === 'number' ? `<${x}>` : promptText(x))).join(' ');
  return String(p);
}

// Splits s into about `parts` pieces (never empty ones, except for "").
function split(s, parts = 4) {
  if (s.length === 0) return [''];
  const size = Math.ceil(s.length / parts);
  const out = [];
  for (let i = 0; i < s.length; i += size) out.push(s.slice(i, i + size));
  return out;
}

// Truncates to max_tokens words; returns [text, finish_reason].
function limit(text, body) {
  const max = body.max_completion_tokens ?? body.max_tokens;
  if (Number.isInteger(max) && max >= 0) {
    const ws = text.split(' ');
    if (ws.length > max) return [ws.slice(0, max).join(' '), 'length'];
  }
  return [text, 'stop'];
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function openaiError(res, status, message, type, code = null, param = null, headers = {}) {
  const body = JSON.stringify({ error: { message, type, param, code } });
  if (res.headersSent || res.destroyed) return;
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers });
  res.end(body);
}

function sendJson(res, obj, status = 200, headers = {}) {
  const body = JSON.stringify(obj);
  if (res.destroyed) return;
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers });
  res.end(body);
}

function sseHeaders(res, headers = {}) {
  res.writeHead(200, {
    'content-type': 'text/event-stream',
    'cache-control': 'no-cache',
    ...headers,
  });
}

// Writes SSE events with chunk_delay_ms between them; stops when the client
// went away. `breakAfter`: destroy the socket after that many events.
async function writeEvents(res, events, delayMs, breakAfter = Infinity) {
  const broken = breakAfter < events.length;
  const n = broken ? breakAfter : events.length;
  for (let i = 0; i < n; i++) {
    if (res.destroyed || res.writableEnded) return;
    if (i > 0 && delayMs > 0) await sleep(delayMs);
    if (res.destroyed) return;
    if (broken) {
      // Let the bytes reach the socket before it is cut.
      await new Promise((resolve) => res.write(events[i], () => resolve()));
    } else {
      res.write(events[i]);
    }
  }
  if (broken) {
    setImmediate(() => res.socket?.destroy());
    return;
  }
  if (!res.destroyed) res.end();
}

const sse = (obj) => `data: ${typeof obj === 'string' ? obj : JSON.stringify(obj)}\n\n`;
const DONE = 'data: [DONE]\n\n';

// -------------------------------------------------------------- endpoints

// The semantic cache's grey-band check (src/semantic/llm_verifier.cc): a last
// message "Question 1: <JSON string>\nQuestion 2: <JSON string>\nSame answer...".
// "yes" when both questions carry the same marker word (a word starting with
// '#', like "#payroll", any case), else "no"; null for any other message.
function verifyVerdict(text) {
  const m = /^Question 1: (".*")\nQuestion 2: (".*")\nSame answer/.exec(text);
  if (!m) return null;
  let a;
  let b;
  try {
    a = JSON.parse(m[1]);
    b = JSON.parse(m[2]);
  } catch {
    return null;
  }
  const markers = (s) => new Set((String(s).match(/#[\p{L}\p{N}_-]+/gu) || []).map((w) => w.toLowerCase()));
  const inA = markers(a);
  for (const w of markers(b)) if (inA.has(w)) return 'yes';
  return 'no';
}

function chatAnswer(body) {
  const messages = Array.isArray(body.messages) ? body.messages : [];
  const last = messages.length ? messages[messages.length - 1] : null;
  const lastText = contentText(last?.content);
  const h = requestHash(body);
  const base = verifyVerdict(lastText) ?? `echo: ${lastText} #${h}${revSuffix(body.model)}`;
  let promptTokens = 0;
  for (const m of messages) promptTokens += 4 + words(contentText(m?.content));
  const n = Number.isInteger(body.n) && body.n > 0 ? Math.min(body.n, 16) : 1;
  const useTools = Array.isArray(body.tools) && body.tools.length > 0 && body.tool_choice !== 'none';
  const choices = [];
  let completionTokens = 0;
  for (let i = 0; i < n; i++) {
    const suffix = n > 1 ? ` [${i}]` : '';
    if (useTools) {
      const forced = body.tool_choice && typeof body.tool_choice === 'object' ? body.tool_choice.function?.name : null;
      const name = forced || body.tools[0]?.function?.name || 'tool';
      const args = JSON.stringify({ echo: lastText + suffix, hash: h });
      completionTokens += words(args) + 3;
      choices.push({ tool: { id: `call_${h}${i}`, name, args }, finish: 'tool_calls' });
    } else {
      const [text, finish] = limit(base + suffix, body);
      completionTokens += words(text);
      choices.push({ text, finish });
    }
  }
  return { choices, usage: { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens } };
}

async function chatCompletions(req, res, body, fault, cfg) {
  if (!body.model) return openaiError(res, 400, 'you must provide a model parameter', 'invalid_request_error', null, 'model');
  if (!Array.isArray(body.messages) || body.messages.length === 0) {
    return openaiError(res, 400, "'messages' must be a non-empty array", 'invalid_request_error', null, 'messages');
  }
  const ans = chatAnswer(body);
  const id = `chatcmpl-${++idCounter}`;
  const ts = created();
  const fp = 'fp_fake' + digestOf(body.model).slice(7, 13);
  const headers = { 'x-request-id': `req_fake_${idCounter}` };

  if (!body.stream) {
    if (fault === 'bad_json_stream') fault = 'garbage';
    const obj = {
      id, object: 'chat.completion', created: ts, model: body.model, system_fingerprint: fp,
      choices: ans.choices.map((c, index) => ({
        index,
        message: c.tool
          ? { role: 'assistant', content: null, tool_calls: [{ id: c.tool.id, type: 'function', function: { name: c.tool.name, arguments: c.tool.args } }], refusal: null }
          : { role: 'assistant', content: c.text, refusal: null },
        logprobs: null,
        finish_reason: c.finish,
      })),
      usage: ans.usage,
    };
    return sendBody(res, obj, fault, headers);
  }

  const includeUsage = !!body.stream_options?.include_usage;
  const chunk = (choices, extra = {}) => ({
    id, object: 'chat.completion.chunk', created: ts, model: body.model, system_fingerprint: fp,
    choices, ...(includeUsage ? { usage: null } : {}), ...extra,
  });
  const events = [];
  ans.choices.forEach((c, index) => {
    const delta = c.tool
      ? { role: 'assistant', content: null, tool_calls: [{ index: 0, id: c.tool.id, type: 'function', function: { name: c.tool.name, arguments: '' } }] }
      : { role: 'assistant', content: '' };
    events.push(sse(chunk([{ index, delta, logprobs: null, finish_reason: null }])));
  });
  if (fault === 'bad_json_stream') events.push(sse('{"id": "broken", "choices": [{"delta": {"content": "unterminated'));
  const pieces = ans.choices.map((c) => split(c.tool ? c.tool.args : c.text));
  const rounds = Math.max(...pieces.map((p) => p.length));
  for (let r = 0; r < rounds; r++) {
    ans.choices.forEach((c, index) => {
      const p = pieces[index][r];
      if (p === undefined) return;
      const delta = c.tool ? { tool_calls: [{ index: 0, function: { arguments: p } }] } : { content: p };
      events.push(sse(chunk([{ index, delta, logprobs: null, finish_reason: null }])));
    });
  }
  ans.choices.forEach((c, index) => {
    events.push(sse(chunk([{ index, delta: {}, logprobs: null, finish_reason: c.finish }])));
  });
  if (includeUsage) events.push(sse(chunk([], { usage: ans.usage })));
  events.push(DONE);
  sseHeaders(res, headers);
  await writeEvents(res, events, cfg.chunk_delay_ms, fault === 'break_stream' ? 2 : Infinity);
}

async function completions(req, res, body, fault, cfg) {
  if (!body.model) return openaiError(res, 400, 'you must provide a model parameter', 'invalid_request_error', null, 'model');
  if (body.prompt === undefined) return openaiError(res, 400, "'prompt' is required", 'invalid_request_error', null, 'prompt');
  const prompts = Array.isArray(body.prompt) && body.prompt.length > 0 && typeof body.prompt[0] !== 'number' ? body.prompt : [body.prompt];
  const h = requestHash(body);
  const n = Number.isInteger(body.n) && body.n > 0 ? Math.min(body.n, 16) : 1;
  const choices = [];
  let promptTokens = 0;
  let completionTokens = 0;
  prompts.forEach((p, pi) => {
    const text = promptText(p);
    promptTokens += words(text);
    for (let i = 0; i < n; i++) {
      const suffix = (prompts.length > 1 ? ` (${pi})` : '') + (n > 1 ? ` [${i}]` : '');
      const [out, finish] = limit(`echo: ${text} #${h}${revSuffix(body.model)}${suffix}`, body);
      completionTokens += words(out);
      choices.push({ text: body.echo ? text + out : out, finish });
    }
  });
  const usage = { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens };
  const id = `cmpl-${++idCounter}`;
  const ts = created();
  const headers = { 'x-request-id': `req_fake_${idCounter}` };
  if (!body.stream) {
    if (fault === 'bad_json_stream') fault = 'garbage';
    const obj = {
      id, object: 'text_completion', created: ts, model: body.model, system_fingerprint: 'fp_fake',
      choices: choices.map((c, index) => ({ text: c.text, index, logprobs: null, finish_reason: c.finish })),
      usage,
    };
    return sendBody(res, obj, fault, headers);
  }
  const includeUsage = !!body.stream_options?.include_usage;
  const chunk = (choices2, extra = {}) => ({
    id, object: 'text_completion', created: ts, model: body.model, system_fingerprint: 'fp_fake',
    choices: choices2, ...(includeUsage ? { usage: null } : {}), ...extra,
  });
  const events = [];
  if (fault === 'bad_json_stream') events.push(sse('{"id": "broken", "choices": [{"text": "unterminated'));
  const pieces = choices.map((c) => split(c.text));
  const rounds = Math.max(...pieces.map((p) => p.length));
  for (let r = 0; r < rounds; r++) {
    choices.forEach((c, index) => {
      const p = pieces[index][r];
      if (p === undefined) return;
      events.push(sse(chunk([{ text: p, index, logprobs: null, finish_reason: null }])));
    });
  }
  choices.forEach((c, index) => events.push(sse(chunk([{ text: '', index, logprobs: null, finish_reason: c.finish }]))));
  if (includeUsage) events.push(sse(chunk([], { usage })));
  events.push(DONE);
  sseHeaders(res, headers);
  await writeEvents(res, events, cfg.chunk_delay_ms, fault === 'break_stream' ? 2 : Infinity);
}

// Deterministic unit vector of `dims` float32 values from a hash of the input.
function embed(model, input, dims) {
  const seed = crypto.createHash('sha256').update(baseModel(model) + '\0' + digestOf(model) + '\0' + canonical(input)).digest();
  let s = seed.readUInt32LE(0) ^ seed.readUInt32LE(4) ^ seed.readUInt32LE(8) ^ seed.readUInt32LE(12);
  let t = seed.readUInt32LE(16) || 1;
  const v = new Float32Array(dims);
  let norm = 0;
  for (let i = 0; i < dims; i++) {
    // mulberry32-style mixing; cheap and deterministic
    s = (s + 0x6d2b79f5) | 0;
    let x = Math.imul(s ^ (s >>> 15), 1 | s);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x ^ t;
    t = (t * 1103515245 + 12345) | 0;
    const f = (((x ^ (x >>> 14)) >>> 0) / 4294967296) * 2 - 1;
    v[i] = f;
    norm += f * f;
  }
  norm = Math.sqrt(norm) || 1;
  for (let i = 0; i < dims; i++) v[i] = v[i] / norm;
  return v;
}

async function embeddings(req, res, body, fault) {
  if (!body.model) return openaiError(res, 400, 'you must provide a model parameter', 'invalid_request_error', null, 'model');
  if (body.input === undefined || body.input === null || (Array.isArray(body.input) && body.input.length === 0)) {
    return openaiError(res, 400, "'input' must be a non-empty string or array", 'invalid_request_error', null, 'input');
  }
  const dims = Number.isInteger(body.dimensions) && body.dimensions > 0 ? Math.min(body.dimensions, 8192) : 8;
  // A string, an array of strings, an array of token ids, or an array of those.
  const inputs = typeof body.input === 'string' || (Array.isArray(body.input) && typeof body.input[0] === 'number') ? [body.input] : body.input;
  const base64 = body.encoding_format === 'base64';
  let tokens = 0;
  const data = inputs.map((inp, index) => {
    tokens += typeof inp === 'string' ? words(inp) : Array.isArray(inp) ? inp.length : 1;
    const v = embed(body.model, inp, dims);
    const embedding = base64 ? Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64') : Array.from(v);
    return { object: 'embedding', index, embedding };
  });
  ++idCounter;
  const obj = { object: 'list', data, model: body.model, usage: { prompt_tokens: tokens, total_tokens: tokens } };
  return sendBody(res, obj, fault === 'bad_json_stream' ? 'garbage' : fault, { 'x-request-id': `req_fake_${idCounter}` });
}

// A complete JSON body, or a broken one for the stream faults.
function sendBody(res, obj, fault, headers) {
  if (fault === 'garbage') {
    const g = 'this is <not> JSON {{{';
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(g), ...headers });
    res.end(g);
    return;
  }
  if (fault === 'break_stream') {
    const body = Buffer.from(JSON.stringify(obj));
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length, ...headers });
    res.write(body.subarray(0, Math.floor(body.length / 2)), () => setImmediate(() => res.socket?.destroy()));
    return;
  }
  sendJson(res, obj, 200, headers);
}

function models(res, fault) {
  sendBody(res, {
    object: 'list',
    data: Object.keys(config.digests).map((id) => ({ id, object: 'model', created: 1700000000, owned_by: 'fake-upstream' })),
  }, fault === 'bad_json_stream' ? 'garbage' : fault, {});
}

function ollamaTags(res, fault) {
  sendBody(res, {
    models: Object.entries(config.digests).map(([m, digest]) => ({
      name: `${m}:latest`,
      model: `${m}:latest`,
      modified_at: '2024-01-01T00:00:00Z',
      size: 4661224676,
      digest,
      details: { parent_model: '', format: 'gguf', family: 'llama', families: ['llama'], parameter_size: '8.0B', quantization_level: 'Q4_0' },
    })),
  }, fault === 'bad_json_stream' ? 'garbage' : fault, {});
}

// ---------------------------------------------------------------- control

function applyConfig(patch) {
  if (!patch || typeof patch !== 'object' || Array.isArray(patch)) throw new Error('config must be a JSON object');
  const next = { ...config, digests: { ...config.digests } };
  for (const [k, v] of Object.entries(patch)) {
    switch (k) {
      case 'latency_ms':
      case 'chunk_delay_ms':
        if (v !== null && !(Number.isFinite(v) && v >= 0)) throw new Error(`${k} must be a non-negative number`);
        next[k] = v ?? 0;
        break;
      case 'fault':
        if (v !== null && !FAULTS.has(String(v))) throw new Error(`unknown fault ${v}; one of ${[...FAULTS].join(', ')}`);
        next.fault = v === null ? null : String(v);
        break;
      case 'fault_count':
        if (v !== null && !(Number.isInteger(v) && v >= 0)) throw new Error('fault_count must be a non-negative integer or null');
        next.fault_count = v;
        break;
      case 'fault_paths':
        if (!Array.isArray(v)) throw new Error('fault_paths must be an array of paths');
        next.fault_paths = v.map(String);
        break;
      case 'digests':
        if (!v || typeof v !== 'object') throw new Error('digests must be an object');
        for (const [m, d] of Object.entries(v)) {
          if (d === null) delete next.digests[baseModel(m)];
          else next.digests[baseModel(m)] = String(d);
        }
        break;
      case 'models':
        if (!Array.isArray(v)) throw new Error('models must be an array');
        next.digests = Object.fromEntries(v.map((m) => [baseModel(m), next.digests[baseModel(m)] ?? DEFAULT_DIGEST]));
        break;
      case 'require_auth':
        next.require_auth = !!v;
        break;
      default:
        throw new Error(`unknown config key ${k}`);
    }
  }
  // Setting a fault without a count means "always"; a count without a fault
  // applies to the current fault.
  if ('fault' in patch && !('fault_count' in patch)) next.fault_count = null;
  if (next.fault_count === 0) next.fault = null;
  config = next;
}

function controlEndpoint(req, res, path, raw) {
  if (path === '/__stats' && req.method === 'GET') {
    let last_body = null;
    if (lastBody) {
      try {
        last_body = JSON.parse(lastBody.toString('utf8'));
      } catch {
        last_body = lastBody.toString('utf8');
      }
    }
    return sendJson(res, { ...stats, last_body }), true;
  }
  if (path === '/__config' && req.method === 'GET') return sendJson(res, config), true;
  if (path === '/__reset' && req.method === 'POST') {
    config = freshConfig();
    stats = freshStats();
    lastBody = null;
    idCounter = 0;
    return sendJson(res, { ok: true }), true;
  }
  if (path === '/__config' && req.method === 'POST') {
    try {
      applyConfig(raw.length ? JSON.parse(raw) : {});
    } catch (e) {
      return openaiError(res, 400, String(e.message || e), 'invalid_request_error'), true;
    }
    return sendJson(res, config), true;
  }
  if (path === '/__health' || path === '/health') return sendJson(res, { ok: true }), true;
  return false;
}

// ----------------------------------------------------------------- server

// The fault for this request: the x-fake-fault header wins (and does not use
// up fault_count); else the configured one on the configured paths.
function pickFault(req, path) {
  const hdr = req.headers['x-fake-fault'];
  if (hdr) return FAULTS.has(hdr) ? hdr : null;
  if (!config.fault || !config.fault_paths.includes(path)) return null;
  if (config.fault_count !== null) {
    if (config.fault_count <= 0) return null;
    config.fault_count -= 1;
    const f = config.fault;
    if (config.fault_count === 0) config.fault = null;
    return f;
  }
  return config.fault;
}

function pickLatency(req, path) {
  const hdr = req.headers['x-fake-latency-ms'];
  if (hdr !== undefined && Number.isFinite(Number(hdr))) return Math.max(0, Number(hdr));
  return config.fault_paths.includes(path) || DEFAULT_FAULT_PATHS.includes(path) ? config.latency_ms : 0;
}

async function handle(req, res, raw) {
  const path = (req.url || '/').split('?')[0];
  if (path.startsWith('/__') || path === '/health') {
    if (!controlEndpoint(req, res, path, raw)) openaiError(res, 404, `unknown control endpoint ${req.method} ${path}`, 'invalid_request_error');
    return;
  }

  stats.calls[path] = (stats.calls[path] || 0) + 1;
  stats.total += 1;
  const myStats = stats;
  myStats.in_flight += 1;
  if (myStats.in_flight > myStats.max_in_flight) myStats.max_in_flight = myStats.in_flight;
  let finished = false;
  const finish = () => {
    if (!finished) {
      finished = true;
      myStats.in_flight -= 1;
    }
  };
  res.on('close', finish);
  stats.last_path = path;
  stats.last_headers = req.headers;
  stats.last_authorization = req.headers.authorization ?? null;
  lastBody = raw.length ? raw : null;

  if (config.require_auth) {
    const auth = req.headers.authorization || '';
    if (!/^Bearer\s+\S+/.test(auth)) {
      return openaiError(res, 401, 'You didn\'t provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).', 'invalid_request_error', 'invalid_api_key');
    }
  }

  const routes = {
    'POST /v1/chat/completions': chatCompletions,
    'POST /v1/completions': completions,
    'POST /v1/embeddings': embeddings,
  };
  const key = `${req.method} ${path}`;
  const handler = routes[key];
  const isGet = key === 'GET /v1/models' || key === 'GET /api/tags';
  if (!handler && !isGet) {
    const known = Object.keys(routes).some((r) => r.endsWith(' ' + path)) || path === '/v1/models' || path === '/api/tags';
    if (known) return openaiError(res, 405, `method ${req.method} not allowed on ${path}`, 'invalid_request_error');
    return openaiError(res, 404, `Invalid URL (${req.method} ${path})`, 'invalid_request_error', 'unknown_url');
  }

  let body = null;
  if (handler) {
    try {
      body = JSON.parse(raw.toString('utf8'));
      if (!body || typeof body !== 'object' || Array.isArray(body)) throw new Error('not an object');
    } catch {
      return openaiError(res, 400, 'We could not parse the JSON body of your request.', 'invalid_request_error');
    }
    if (body.model) {
      const m = baseModel(body.model);
      stats.calls_by_model[m] = (stats.calls_by_model[m] || 0) + 1;
    }
  }

  const cfg = config; // the config as it was when the request arrived
  const fault = pickFault(req, path);
  const latency = pickLatency(req, path);
  if (fault) stats.faults_injected += 1;
  if (latency > 0) {
    await sleep(latency);
    if (res.destroyed) return;
  }

  switch (fault) {
    case 'hang':
      return; // never answers; the socket stays open until the client gives up
    case 'close':
      req.socket.destroy();
      return;
    case '500':
      return openaiError(res, 500, 'The server had an error while processing your request. Sorry about that!', 'server_error');
    case '429':
      return openaiError(res, 429, 'Rate limit reached for requests. Please try again in 1s.', 'requests', 'rate_limit_exceeded', null, { 'retry-after': '1' });
    case 'garbage': {
      const g = 'this is <not> JSON {{{';
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(g) });
      return res.end(g);
    }
    default:
      break;
  }

  if (key === 'GET /v1/models') return models(res, fault);
  if (key === 'GET /api/tags') return ollamaTags(res, fault);
  return handler(req, res, body, fault, cfg);
}

const server = http.createServer({ keepAlive: true }, (req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const raw = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
    handle(req, res, raw).catch((e) => {
      if (VERBOSE) process.stderr.write(`fake_upstream: ${e.stack || e}\n`);
      if (!res.headersSent) openaiError(res, 500, `fake upstream bug: ${e.message || e}`, 'server_error');
      else res.destroy();
    });
  });
  req.on('error', () => {});
});
server.keepAliveTimeout = 65_000;
server.headersTimeout = 66_000;
server.requestTimeout = 0;
server.on('clientError', (err, socket) => {
  if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n');
  else socket.destroy();
});

const sockets = new Set();
server.on('connection', (s) => {
  s.setNoDelay(true);
  sockets.add(s);
  s.on('close', () => sockets.delete(s));
});

let stopping = false;
function shutdown(code = 0) {
  if (stopping) return;
  stopping = true;
  server.close();
  for (const s of sockets) s.destroy();
  setImmediate(() => process.exit(code));
}

process.on('SIGTERM', () => shutdown(0));
process.on('SIGINT', () => shutdown(0));
process.stdout.on('error', () => {}); // a harness that stopped reading must not kill us with EPIPE

server.on('error', (e) => {
  process.stderr.write(`fake_upstream: ${e.message}\n`);
  process.exit(1);
});

server.listen(opts.port, opts.host, () => {
  process.stdout.write(`{"port": ${server.address().port}}\n`);
  if (!opts.ignoreStdin) {
    let watch = false;
    try {
      const st = fs.fstatSync(0);
      watch = st.isFIFO() || st.isSocket();
    } catch {
      watch = false;
    }
    if (watch) {
      process.stdin.on('end', () => shutdown(0));
      process.stdin.on('close', () => shutdown(0));
      process.stdin.on('error', () => shutdown(0));
      process.stdin.resume(); // drain whatever the harness writes
    }
  }
});
