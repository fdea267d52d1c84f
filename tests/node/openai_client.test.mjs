// The official `openai` npm client against the llmcache gateway.
//
//   GATEWAY_URL=http://127.0.0.1:PORT/v1 EXPECT_CACHE_HEADERS=1 \
//     node --test tests/node/openai_client.test.mjs
//
// GATEWAY_URL        base URL including /v1 (default http://127.0.0.1:8080/v1)
// EXPECT_CACHE_HEADERS  when set, assert the x-llmcache response header
//                    (first call not "hit", identical repeat "hit"); unset,
//                    e.g. when pointed straight at tests/fake-upstream, only
//                    the answers themselves are compared.
// TEST_MODEL         model name (default llama3)
// TEST_EMBED_MODEL   embeddings model (default TEST_MODEL)
//
// Every run uses a random nonce in its prompts, so reruns against a gateway
// with a persistent cache do not collide with earlier runs.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import OpenAI from 'openai';

const BASE_URL = process.env.GATEWAY_URL || 'http://127.0.0.1:8080/v1';
const EXPECT_CACHE = !!process.env.EXPECT_CACHE_HEADERS;
const MODEL = process.env.TEST_MODEL || 'llama3';
const EMBED_MODEL = process.env.TEST_EMBED_MODEL || MODEL;
const NONCE = crypto.randomBytes(8).toString('hex');
const TEST_TIMEOUT_MS = 30_000;

const client = new OpenAI({
  apiKey: 'test-key',
  baseURL: BASE_URL,
  timeout: 15_000, // per request
  maxRetries: 0, // a retry would hide a failed first call and skew hit/miss
});

function prompt(tag) {
  return `llmcache node test ${tag} nonce ${NONCE}`;
}

function cacheHeader(response) {
  return response.headers.get('x-llmcache');
}

function expectMiss(response, what) {
  if (!EXPECT_CACHE) return;
  const v = cacheHeader(response);
  assert.ok(v !== null, `${what}: the gateway sent no x-llmcache header`);
  assert.notEqual(v, 'hit', `${what}: a never-seen request was served from cache`);
}

function expectHit(response, what) {
  if (!EXPECT_CACHE) return;
  assert.equal(cacheHeader(response), 'hit', `${what}: x-llmcache`);
}

// When the upstream is tests/fake-upstream, answers echo the prompt.
function expectEcho(text, p) {
  if (typeof text === 'string' && text.startsWith('echo: ')) {
    assert.ok(text.includes(p), `echoed answer ${JSON.stringify(text)} lacks the prompt`);
  }
}

async function chat(p, extra = {}) {
  return client.chat.completions
    .create({ model: MODEL, messages: [{ role: 'user', content: p }], temperature: 0, ...extra })
    .withResponse();
}

// Runs a streaming chat request; returns the concatenated text and more.
async function streamChat(p, extra = {}) {
  const { data: stream, response } = await client.chat.completions
    .create({ model: MODEL, messages: [{ role: 'user', content: p }], temperature: 0, stream: true, ...extra })
    .withResponse();
  let text = '';
  let role = null;
  let finishReason = null;
  let usage = null;
  let chunks = 0;
  for await (const chunk of stream) {
    chunks++;
    assert.equal(chunk.object, 'chat.completion.chunk');
    if (chunk.usage) usage = chunk.usage;
    const choice = chunk.choices[0];
    if (!choice) continue;
    if (choice.delta?.role) role = choice.delta.role;
    if (choice.delta?.content) text += choice.delta.content;
    if (choice.finish_reason) finishReason = choice.finish_reason;
  }
  return { text, role, finishReason, usage, chunks, response };
}

test('chat completion: an identical repeat is a hit with the same content', { timeout: TEST_TIMEOUT_MS }, async () => {
  const p = prompt('chat');
  const first = await chat(p);
  expectMiss(first.response, 'first chat');
  const msg = first.data.choices[0].message;
  assert.equal(first.data.object, 'chat.completion');
  assert.equal(msg.role, 'assistant');
  assert.equal(typeof msg.content, 'string');
  assert.ok(msg.content.length > 0);
  assert.equal(first.data.choices[0].finish_reason, 'stop');
  assert.ok(first.data.usage.total_tokens > 0);
  expectEcho(msg.content, p);

  const second = await chat(p);
  expectHit(second.response, 'repeated chat');
  assert.equal(second.data.choices[0].message.content, msg.content);
  assert.equal(second.data.choices[0].finish_reason, 'stop');
  assert.equal(second.data.object, 'chat.completion');
});

test('chat completion: a different prompt is not served the cached answer', { timeout: TEST_TIMEOUT_MS }, async () => {
  const a = await chat(prompt('distinct-a'));
  const b = await chat(prompt('distinct-b'));
  expectMiss(b.response, 'different prompt');
  assert.notEqual(b.data.choices[0].message.content, a.data.choices[0].message.content);
  // A different model parameter is a different request too.
  const c = await chat(prompt('distinct-a'), { max_tokens: 500 });
  expectMiss(c.response, 'different max_tokens');
});

test('streaming chat: a repeat stream is a hit with identical text, and so is a non-stream request', { timeout: TEST_TIMEOUT_MS }, async () => {
  const p = prompt('stream');
  const first = await streamChat(p);
  assert.match(first.response.headers.get('content-type') || '', /text\/event-stream/);
  expectMiss(first.response, 'first stream');
  assert.equal(first.role, 'assistant');
  assert.equal(first.finishReason, 'stop');
  assert.ok(first.text.length > 0);
  assert.ok(first.chunks >= 2, `expected several chunks, got ${first.chunks}`);
  expectEcho(first.text, p);

  const second = await streamChat(p);
  expectHit(second.response, 'repeated stream');
  assert.equal(second.text, first.text);
  assert.equal(second.role, 'assistant');
  assert.equal(second.finishReason, 'stop');

  // The stream recorded the answer; the same request without streaming is
  // served from it.
  const plain = await chat(p);
  expectHit(plain.response, 'non-stream after stream');
  assert.equal(plain.data.choices[0].message.content, first.text);
  assert.equal(plain.data.choices[0].finish_reason, 'stop');
});

test('streaming chat with include_usage ends with a usage chunk, also on a hit', { timeout: TEST_TIMEOUT_MS }, async () => {
  const p = prompt('stream-usage');
  const opts = { stream_options: { include_usage: true } };
  const first = await streamChat(p, opts);
  expectMiss(first.response, 'first stream with usage');
  assert.ok(first.usage, 'no usage chunk');
  assert.ok(first.usage.total_tokens > 0);
  const second = await streamChat(p, opts);
  expectHit(second.response, 'repeated stream with usage');
  assert.equal(second.text, first.text);
  assert.ok(second.usage, 'no usage chunk on the hit');
  assert.equal(second.usage.completion_tokens, first.usage.completion_tokens);
});

test('non-stream first, then a stream of the same request is a hit', { timeout: TEST_TIMEOUT_MS }, async () => {
  const p = prompt('plain-then-stream');
  const plain = await chat(p);
  expectMiss(plain.response, 'first plain');
  const streamed = await streamChat(p);
  expectHit(streamed.response, 'stream after plain');
  assert.equal(streamed.text, plain.data.choices[0].message.content);
  assert.equal(streamed.finishReason, 'stop');
});

test('legacy completions: an identical repeat is a hit with the same text', { timeout: TEST_TIMEOUT_MS }, async () => {
  const p = prompt('legacy');
  const req = { model: MODEL, prompt: p, max_tokens: 64, temperature: 0 };
  const first = await client.completions.create(req).withResponse();
  expectMiss(first.response, 'first completion');
  assert.equal(first.data.object, 'text_completion');
  const text = first.data.choices[0].text;
  assert.equal(typeof text, 'string');
  assert.ok(text.length > 0);
  expectEcho(text, p);

  const second = await client.completions.create(req).withResponse();
  expectHit(second.response, 'repeated completion');
  assert.equal(second.data.choices[0].text, text);

  // Streaming the same legacy request yields the same text.
  const { data: stream, response } = await client.completions.create({ ...req, stream: true }).withResponse();
  let streamed = '';
  for await (const chunk of stream) streamed += chunk.choices[0]?.text ?? '';
  expectHit(response, 'legacy stream after plain');
  assert.equal(streamed, text);
});

test('embeddings: an identical repeat is a hit with the same vector', { timeout: TEST_TIMEOUT_MS }, async () => {
  const input = prompt('embed');
  // The client asks for base64 by default and decodes it.
  const first = await client.embeddings.create({ model: EMBED_MODEL, input }).withResponse();
  expectMiss(first.response, 'first embedding');
  assert.equal(first.data.object, 'list');
  assert.equal(first.data.data.length, 1);
  const v1 = Array.from(first.data.data[0].embedding);
  assert.ok(v1.length > 0);
  assert.ok(v1.every((x) => Number.isFinite(x)));

  const second = await client.embeddings.create({ model: EMBED_MODEL, input }).withResponse();
  expectHit(second.response, 'repeated embedding');
  assert.deepEqual(Array.from(second.data.data[0].embedding), v1);

  // Float encoding of several inputs; repeat is a hit with the same vectors.
  const req = { model: EMBED_MODEL, input: [prompt('embed-a'), prompt('embed-b')], encoding_format: 'float' };
  const f1 = await client.embeddings.create(req).withResponse();
  expectMiss(f1.response, 'first float embeddings');
  assert.equal(f1.data.data.length, 2);
  assert.notDeepEqual(f1.data.data[0].embedding, f1.data.data[1].embedding);
  const f2 = await client.embeddings.create(req).withResponse();
  expectHit(f2.response, 'repeated float embeddings');
  assert.deepEqual(f2.data.data.map((d) => d.embedding), f1.data.data.map((d) => d.embedding));
});
