#!/usr/bin/env node
// Derives labelled question pairs from the semantic-cache development set,
// for `llmcache calibrate` and `llmcache eval`.
//
//   node tools/devset-pairs.mjs [DEVSET.jsonl] [PAIRS.jsonl]   write the pairs file
//   node tools/devset-pairs.mjs --check [DEVSET] [PAIRS]       validate the set and
//                                                              fail if PAIRS is stale
//
// Defaults: data/semantic/devset.jsonl and data/semantic/pairs.jsonl next to
// this script's repository. No dependencies; the output is deterministic (a
// seeded generator picks the random pairs), so the checked-in file can be
// compared with a fresh run.
//
// Each pair: {"a", "b", "same", "lang", "kind"}, kind one of
//   paraphrase  same intent: must share an answer (same = true)
//   sibling     same family, other intent: the hard negatives (same = false)
//   random      other family, same language: easy negatives (same = false)
// Pairs never mix languages: an English answer is never right for a
// Japanese question, whatever the embeddings say.

import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const check = args[0] === '--check';
if (check) args.shift();
const devsetPath = args[0] ?? join(root, 'data/semantic/devset.jsonl');
const pairsPath = args[1] ?? join(root, 'data/semantic/pairs.jsonl');

// The minimums the development set promises (data/semantic/README.md).
const MIN_QUERIES = 480;
const MIN_INTENTS = 90;
const MIN_SIBLING_FAMILIES = 30;
const MIN_PER_INTENT = 4;
const MAX_PER_INTENT = 8;
const LANGS = new Set(['en', 'ja']);
const ID = /^[a-z0-9_]+(\.[a-z0-9_]+)*$/;

function fail(msg) {
  console.error(`devset-pairs: ${msg}`);
  process.exit(1);
}

function load(path) {
  const rows = [];
  const lines = readFileSync(path, 'utf8').split('\n');
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    let r;
    try {
      r = JSON.parse(line);
    } catch (e) {
      fail(`${path}:${i + 1}: not JSON: ${e.message}`);
    }
    const keys = Object.keys(r).sort().join(',');
    if (keys !== 'family,intent,lang,text') fail(`${path}:${i + 1}: keys must be text, intent, family, lang`);
    if (typeof r.text !== 'string' || r.text.trim() === '' || r.text !== r.text.trim()) {
      fail(`${path}:${i + 1}: text must be a non-empty trimmed string`);
    }
    if (!ID.test(r.intent) || !ID.test(r.family)) fail(`${path}:${i + 1}: bad intent or family id`);
    if (!LANGS.has(r.lang)) fail(`${path}:${i + 1}: lang must be en or ja`);
    rows.push(r);
  });
  return rows;
}

// Checks what the README promises; returns a one-line summary.
function validate(rows) {
  const seen = new Map();
  const intents = new Map();
  for (const r of rows) {
    // Case and spacing must not make two texts one: an exact cache key
    // normalises them, and a paraphrase pair of equal texts tests nothing.
    const norm = r.text.toLowerCase().replace(/\s+/g, ' ');
    if (seen.has(norm)) fail(`duplicate text: ${JSON.stringify(r.text)}`);
    seen.set(norm, r);
    const it = intents.get(r.intent) ?? { family: r.family, lang: r.lang, n: 0 };
    if (it.family !== r.family || it.lang !== r.lang) fail(`intent ${r.intent} spans families or languages`);
    it.n++;
    intents.set(r.intent, it);
  }
  const families = new Map();
  for (const [name, it] of intents) {
    if (it.n < MIN_PER_INTENT || it.n > MAX_PER_INTENT) fail(`intent ${name} has ${it.n} queries`);
    families.set(it.family, (families.get(it.family) ?? 0) + 1);
  }
  const siblingFamilies = [...families.values()].filter((n) => n >= 2).length;
  const ja = rows.filter((r) => r.lang === 'ja').length;
  if (rows.length < MIN_QUERIES) fail(`${rows.length} queries, want >= ${MIN_QUERIES}`);
  if (intents.size < MIN_INTENTS) fail(`${intents.size} intents, want >= ${MIN_INTENTS}`);
  if (siblingFamilies < MIN_SIBLING_FAMILIES) fail(`${siblingFamilies} sibling families, want >= ${MIN_SIBLING_FAMILIES}`);
  const jaShare = ja / rows.length;
  if (jaShare < 0.15 || jaShare > 0.35) fail(`Japanese share ${jaShare.toFixed(2)}, want about 0.25`);
  return `${rows.length} queries, ${intents.size} intents, ${families.size} families ` +
    `(${siblingFamilies} with siblings), ${ja} Japanese`;
}

// mulberry32: small, seedable, the same on every platform.
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function makePairs(rows) {
  const pairs = [];
  const pair = (x, y, same, kind) => pairs.push({ a: x.text, b: y.text, same, lang: x.lang, kind });
  for (let i = 0; i < rows.length; i++) {
    for (let j = i + 1; j < rows.length; j++) {
      const x = rows[i];
      const y = rows[j];
      if (x.lang !== y.lang || x.family !== y.family) continue;
      if (x.intent === y.intent) pair(x, y, true, 'paraphrase');
      else pair(x, y, false, 'sibling');
    }
  }
  // As many random negatives per language as that language has paraphrase
  // pairs, so each kind carries similar weight in a calibration.
  const next = rng(20260401);
  for (const lang of LANGS) {
    const pool = rows.filter((r) => r.lang === lang);
    const want = pairs.filter((p) => p.kind === 'paraphrase' && p.lang === lang).length;
    const taken = new Set();
    let made = 0;
    for (let tries = 0; made < want && tries < want * 50; tries++) {
      const i = Math.floor(next() * pool.length);
      const j = Math.floor(next() * pool.length);
      if (pool[i].family === pool[j].family) continue;
      const key = i < j ? `${i},${j}` : `${j},${i}`;
      if (taken.has(key)) continue;
      taken.add(key);
      pair(pool[i], pool[j], false, 'random');
      made++;
    }
  }
  return pairs.map((p) => JSON.stringify(p)).join('\n') + '\n';
}

const rows = load(devsetPath);
const summary = validate(rows);
const out = makePairs(rows);
const counts = {};
for (const line of out.trim().split('\n')) {
  const p = JSON.parse(line);
  counts[p.kind] = (counts[p.kind] ?? 0) + 1;
}
const detail = `${summary}; pairs: ${Object.entries(counts).map(([k, n]) => `${n} ${k}`).join(', ')}`;
if (check) {
  let current = '';
  try {
    current = readFileSync(pairsPath, 'utf8');
  } catch {
    fail(`${pairsPath} is missing; run node tools/devset-pairs.mjs`);
  }
  if (current !== out) fail(`${pairsPath} is stale; run node tools/devset-pairs.mjs`);
  console.log(`devset ok: ${detail}`);
} else {
  writeFileSync(pairsPath, out);
  console.log(`wrote ${pairsPath}: ${detail}`);
}
