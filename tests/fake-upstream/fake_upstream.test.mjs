// Self-test of the fake upstream: node --test tests/fake-upstream/
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const SCRIPT = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fake_upstream.mjs');
const T = { timeout: 15_000 };

// Starts the fake with a stdin pipe; resolves with {proc, port, url}.
async function start(env = {}, args = []) {
  const proc = spawn(process.execPath, [SCRIPT, '--port', '0', ...args], {
    stdio: ['pipe', 'pipe', 'inherit'],
    env: { ...process.env, ...env },
  });
  let out = '';
  proc.stdout.setEncoding('utf8');
  const line = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('fake upstream did not start')), 5000);
    proc.stdout.on('data', (d) => {
      out += d;
      if (out.includes('\n')) {
        clearTimeout(timer);
        resolve(out.slice(0, out.indexOf('\n')));
      }
    });
    proc.on('exit', (code) => reject(new Error(`exited ${code}`)));
  });
  assert.match(line, /^\{"port": \d+\}$/);
  const { port } = JSON.parse(line);
  return { proc, port, url: `http://127.0.0.1:${port}` };
}

let fake;
before(async () => {
  fake = await start();
});
after(() => {
  fake?.proc.kill('SIGTERM');
});
beforeEach(async () => {
  await post('/__reset', {});
});

async function post(p, body, headers = {}) {
  return fetch(fake.url + p, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}
const get = (p) => fetch(fake.url + p).then((r) => r.json());
const chatBody = (content, extra = {}) => ({ model: 'llama3', messages: [{ role: 'user', content }], ...extra });

function sseEvents(text) {
  return text.split('\n\n').filter(Boolean).map((e) => {
    assert.ok(e.startsWith('data: '), e);
    return e.slice(6);
  });
}

test('chat answers are deterministic, key-order independent and differ per request', T, async () => {
  const a = await (await post('/v1/chat/completions', chatBody('hello world'))).json();
  const b = await (await post('/v1/chat/completions', { messages: [{ content: 'hello world', role: 'user' }], model: 'llama3' })).json();
  const c = await (await post('/v1/chat/completions', chatBody('hello world!'))).json();
  assert.equal(a.object, 'chat.completion');
  assert.match(a.id, /^chatcmpl-\d+$/);
  assert.equal(a.model, 'llama3');
  assert.match(a.choices[0].message.content, /^echo: hello world #[0-9a-f]{8}$/);
  assert.equal(a.choices[0].finish_reason, 'stop');
  assert.equal(b.choices[0].message.content, a.choices[0].message.content);
  assert.notEqual(c.choices[0].message.content, a.choices[0].message.content);
  assert.deepEqual(a.usage, { prompt_tokens: 6, completion_tokens: 4, total_tokens: 10 });
});

test('a stream carries the same text as the plain answer, with usage and [DONE]', T, async () => {
  const plain = await (await post('/v1/chat/completions', chatBody('stream me'))).json();
  const r = await post('/v1/chat/completions', chatBody('stream me', { stream: true, stream_options: { include_usage: true } }));
  assert.match(r.headers.get('content-type'), /text\/event-stream/);
  const events = sseEvents(await r.text());
  assert.equal(events.at(-1), '[DONE]');
  const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
  assert.equal(chunks[0].choices[0].delta.role, 'assistant');
  const text = chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('');
  assert.equal(text, plain.choices[0].message.content);
  assert.ok(chunks.length >= 6);
  assert.equal(chunks.at(-2).choices[0].finish_reason, 'stop');
  assert.deepEqual(chunks.at(-1).choices, []);
  assert.deepEqual(chunks.at(-1).usage, plain.usage);
});

test('n choices, tools and max_tokens', T, async () => {
  const n = await (await post('/v1/chat/completions', chatBody('x', { n: 3 }))).json();
  assert.equal(n.choices.length, 3);
  assert.equal(new Set(n.choices.map((c) => c.message.content)).size, 3);
  const t = await (await post('/v1/chat/completions', chatBody('weather?', { tools: [{ type: 'function', function: { name: 'get_weather', parameters: {} } }] }))).json();
  assert.equal(t.choices[0].finish_reason, 'tool_calls');
  assert.equal(t.choices[0].message.tool_calls[0].function.name, 'get_weather');
  assert.equal(JSON.parse(t.choices[0].message.tool_calls[0].function.arguments).echo, 'weather?');
  const m = await (await post('/v1/chat/completions', chatBody('one two three four', { max_tokens: 2 }))).json();
  assert.equal(m.choices[0].message.content, 'echo: one');
  assert.equal(m.choices[0].finish_reason, 'length');
});

test('legacy completions and embeddings', T, async () => {
  const c = await (await post('/v1/completions', { model: 'llama3', prompt: 'say this' })).json();
  assert.equal(c.object, 'text_completion');
  assert.match(c.choices[0].text, /^echo: say this #[0-9a-f]{8}$/);
  const s = await (await post('/v1/completions', { model: 'llama3', prompt: 'say this', stream: true })).text();
  const ev = sseEvents(s);
  assert.equal(ev.at(-1), '[DONE]');
  assert.equal(ev.slice(0, -1).map((e) => JSON.parse(e).choices[0].text).join(''), c.choices[0].text);

  const e1 = await (await post('/v1/embeddings', { model: 'llama3', input: ['a', 'b'] })).json();
  const e2 = await (await post('/v1/embeddings', { model: 'llama3', input: 'a', dimensions: 8 })).json();
  assert.equal(e1.data.length, 2);
  assert.equal(e1.data[0].embedding.length, 8);
  assert.deepEqual(e2.data[0].embedding, e1.data[0].embedding);
  assert.notDeepEqual(e1.data[1].embedding, e1.data[0].embedding);
  const norm = Math.hypot(...e1.data[0].embedding);
  assert.ok(Math.abs(norm - 1) < 1e-5);
  const b64 = await (await post('/v1/embeddings', { model: 'llama3', input: 'a', encoding_format: 'base64' })).json();
  const buf = Buffer.from(b64.data[0].embedding, 'base64');
  const floats = Array.from(new Float32Array(buf.buffer, buf.byteOffset, buf.length / 4));
  assert.deepEqual(floats, e1.data[0].embedding);
});

test('models, tags and digest changes change the answers', T, async () => {
  const models = await get('/v1/models');
  assert.deepEqual(models.data.map((m) => m.id), ['llama3', 'gpt-4o-mini', 'test-model']);
  let tags = await get('/api/tags');
  assert.equal(tags.models[0].name, 'llama3:latest');
  assert.equal(tags.models[0].digest, 'sha256:' + 'a'.repeat(64));
  const before = (await (await post('/v1/chat/completions', chatBody('rev test'))).json()).choices[0].message.content;
  const cfg = await (await post('/__config', { digests: { llama3: 'sha256:123456789abc' } })).json();
  assert.equal(cfg.digests.llama3, 'sha256:123456789abc');
  tags = await get('/api/tags');
  assert.equal(tags.models.find((m) => m.name === 'llama3:latest').digest, 'sha256:123456789abc');
  const after = (await (await post('/v1/chat/completions', chatBody('rev test'))).json()).choices[0].message.content;
  assert.equal(after, before + ' rev:123456');
  const other = (await (await post('/v1/chat/completions', { ...chatBody('rev test'), model: 'gpt-4o-mini' })).json()).choices[0].message.content;
  assert.ok(!other.includes('rev:'));
});

test('stats count calls and remember the last request', T, async () => {
  await post('/v1/chat/completions', chatBody('a'), { authorization: 'Bearer abc', 'x-custom': '1' });
  await post('/v1/embeddings', { model: 'test-model', input: 'a' });
  await get('/v1/models');
  const s = await get('/__stats');
  assert.deepEqual(s.calls, { '/v1/chat/completions': 1, '/v1/embeddings': 1, '/v1/models': 1 });
  assert.equal(s.total, 3);
  assert.deepEqual(s.calls_by_model, { llama3: 1, 'test-model': 1 });
  assert.equal(s.last_path, '/v1/models');
  assert.equal(s.in_flight, 0);
  const s2 = await get('/__stats');
  assert.equal(s2.total, 3, 'control endpoints are not counted');
  await post('/__reset', {});
  assert.equal((await get('/__stats')).total, 0);
});

test('faults: status codes, fault_count, garbage, per-request header', T, async () => {
  await post('/__config', { fault: '500', fault_count: 2 });
  const codes = [];
  for (let i = 0; i < 3; i++) codes.push((await post('/v1/chat/completions', chatBody('f'))).status);
  assert.deepEqual(codes, [500, 500, 200]);
  const r429 = await post('/v1/chat/completions', chatBody('f'), { 'x-fake-fault': '429' });
  assert.equal(r429.status, 429);
  const err = await r429.json();
  assert.equal(err.error.code, 'rate_limit_exceeded');
  assert.deepEqual(Object.keys(err.error).sort(), ['code', 'message', 'param', 'type']);
  const g = await post('/v1/chat/completions', chatBody('f'), { 'x-fake-fault': 'garbage' });
  assert.equal(g.status, 200);
  await assert.rejects(g.json());
  await assert.rejects(post('/v1/chat/completions', chatBody('f'), { 'x-fake-fault': 'close' }));
  assert.equal((await post('/__config', { fault: 'nope' })).status, 400);
  // Faults do not touch control endpoints or, by default, /api/tags.
  await post('/__config', { fault: '500' });
  assert.equal((await fetch(fake.url + '/api/tags')).status, 200);
  assert.equal((await fetch(fake.url + '/__stats')).status, 200);
});

test('break_stream cuts a stream after two events; bad_json_stream sends a broken event', T, async () => {
  const r = await post('/v1/chat/completions', chatBody('b', { stream: true }), { 'x-fake-fault': 'break_stream' });
  assert.equal(r.status, 200);
  let got = '';
  await assert.rejects(async () => {
    for await (const part of r.body) got += Buffer.from(part).toString();
  });
  assert.equal(sseEvents(got).length, 2);
  assert.ok(!got.includes('[DONE]'));

  const b = await post('/v1/chat/completions', chatBody('b', { stream: true }), { 'x-fake-fault': 'bad_json_stream' });
  const events = sseEvents(await b.text());
  assert.equal(events.at(-1), '[DONE]');
  assert.throws(() => JSON.parse(events[1]));
});

test('latency and hang', T, async () => {
  await post('/__config', { latency_ms: 200 });
  let t0 = Date.now();
  await post('/v1/chat/completions', chatBody('slow'));
  assert.ok(Date.now() - t0 >= 190);
  t0 = Date.now();
  await post('/v1/chat/completions', chatBody('fast'), { 'x-fake-latency-ms': '0' });
  assert.ok(Date.now() - t0 < 150);
  await assert.rejects(
    fetch(fake.url + '/v1/chat/completions', {
      method: 'POST', body: JSON.stringify(chatBody('h')), headers: { 'x-fake-fault': 'hang' }, signal: AbortSignal.timeout(300),
    }),
  );
});

test('FAKE_REQUIRE_AUTH answers 401 without a bearer token', T, async () => {
  const f = await start({ FAKE_REQUIRE_AUTH: '1' });
  try {
    const r = await fetch(f.url + '/v1/models');
    assert.equal(r.status, 401);
    assert.equal((await r.json()).error.code, 'invalid_api_key');
    const ok = await fetch(f.url + '/v1/models', { headers: { authorization: 'Bearer k' } });
    assert.equal(ok.status, 200);
    const s = await fetch(f.url + '/__stats').then((x) => x.json());
    assert.equal(s.last_authorization, 'Bearer k');
  } finally {
    f.proc.kill('SIGTERM');
  }
});

test('exits when its stdin pipe closes', T, async () => {
  const f = await start();
  const exited = once(f.proc, 'exit');
  f.proc.stdin.end();
  const [code] = await exited;
  assert.equal(code, 0);
  await assert.rejects(
    new Promise((resolve, reject) => {
      const s = net.connect(f.port, '127.0.0.1', () => {
        s.destroy();
        resolve();
      });
      s.on('error', reject);
    }),
  );
});

test('answers the grey-band check by shared marker words', T, async () => {
  const ask = async (a, b) => {
    const content = `Question 1: ${JSON.stringify(a)}\nQuestion 2: ${JSON.stringify(b)}\nSame answer (yes or no)?`;
    const r = await post('/v1/chat/completions', { model: 'judge', max_tokens: 2, messages: [{ role: 'system', content: 'x' }, { role: 'user', content }] });
    assert.equal(r.status, 200);
    return (await r.json()).choices[0].message.content;
  };
  assert.equal(await ask('reset my password #Account', 'how to reset a password #account'), 'yes');
  assert.equal(await ask('reset my password #account', 'reset my username #profile'), 'no');
  assert.equal(await ask('reset my password', 'how to reset a password'), 'no');
  // Only the exact layout is a check; other messages are echoed as usual.
  const echo = await post('/v1/chat/completions', chatBody('Question 1: "a"\nSame answer?'));
  assert.match((await echo.json()).choices[0].message.content, /^echo: /);
  assert.equal((await get('/__stats')).calls_by_model.judge, 3);
});
