// SerialEngine against the reference (a Session driven directly), and its
// contract: callbacks in order, on_done exactly once, cancellation, errors,
// shutdown with queued requests.
#include "engine/server/serial_engine.h"

#include <gtest/gtest.h>

#include <future>

#include "engine/server/open_backend.h"
#include "engine/server/server_test_util.h"

namespace llmcache::engine {
namespace {

struct Outcome {
  std::vector<int32_t> tokens;
  Result<CompletionUsage> done = Err(Status::Internal("no on_done"));
};

// Submits and waits. cancel_after: on_token returns false on that token.
Outcome RunOne(EngineBackend& backend, CompletionRequest request, size_t cancel_after = 0) {
  auto outcome = std::make_shared<Outcome>();
  std::promise<void> finished;
  CompletionCallbacks cb;
  cb.on_token = [outcome, cancel_after](int32_t t) {
    outcome->tokens.push_back(t);
    return cancel_after == 0 || outcome->tokens.size() < cancel_after;
  };
  cb.on_done = [outcome, &finished](Result<CompletionUsage> r) {
    outcome->done = std::move(r);
    finished.set_value();
  };
  backend.Submit(std::move(request), std::move(cb));
  finished.get_future().wait();
  return *outcome;
}

class SerialEngineTest : public servertest::TinyModelTest {
 protected:
  std::unique_ptr<EngineBackend> Open(uint32_t n_ctx) {
    auto b = OpenEngineBackend(*model_, {.n_ctx = n_ctx, .threads = 2, .serial = true});
    EXPECT_TRUE(b.has_value());
    return b ? std::move(*b) : nullptr;
  }
};

TEST_F(SerialEngineTest, GreedyTokensMatchTheReferenceAndUsageCountsThem) {
  auto backend = Open(64);
  const Vocab vocab = servertest::VocabOf(*model_);
  const std::vector<int32_t> prompt = vocab.Tokenize("The quick brown fox", true, false);
  const auto expected = servertest::ReferenceGreedy(*model_, vocab, prompt, 12);
  CompletionRequest r;
  r.prompt = prompt;
  r.max_tokens = 12;
  // Twice: the session is reset between requests.
  for (int i = 0; i < 2; ++i) {
    Outcome o = RunOne(*backend, r);
    ASSERT_TRUE(o.done.has_value()) << o.done.error().ToString();
    EXPECT_EQ(o.tokens, expected);
    EXPECT_EQ(o.done->prompt_tokens, prompt.size());
    EXPECT_EQ(o.done->completion_tokens, expected.size());
    EXPECT_EQ(o.done->cached_tokens, 0u);
    EXPECT_EQ(o.done->finish,
              vocab.IsEog(expected.back()) ? FinishReason::kStop : FinishReason::kLength);
  }
}

TEST_F(SerialEngineTest, StopTokenEndsTheAnswerAndIsReported) {
  auto backend = Open(64);
  const Vocab vocab = servertest::VocabOf(*model_);
  const std::vector<int32_t> prompt = vocab.Tokenize("Once upon a time", true, false);
  const auto expected = servertest::ReferenceGreedy(*model_, vocab, prompt, 8);
  ASSERT_GE(expected.size(), 4u);
  CompletionRequest r;
  r.prompt = prompt;
  r.max_tokens = 8;
  r.stop_tokens = {expected[2]};
  Outcome o = RunOne(*backend, r);
  ASSERT_TRUE(o.done.has_value());
  const auto first = std::find(expected.begin(), expected.end(), expected[2]);
  EXPECT_EQ(o.tokens, std::vector<int32_t>(expected.begin(), first + 1));
  EXPECT_EQ(o.done->finish, FinishReason::kStop);
}

TEST_F(SerialEngineTest, SamplingWithASeedIsReproducible) {
  auto backend = Open(64);
  CompletionRequest r;
  r.prompt = {1, 450, 4996};
  r.max_tokens = 10;
  r.sampling = {.temperature = 1.5f, .top_k = 50, .top_p = 0.95f, .seed = 42};
  Outcome a = RunOne(*backend, r);
  Outcome b = RunOne(*backend, r);
  EXPECT_EQ(a.tokens, b.tokens);
  EXPECT_EQ(a.tokens.size(), 10u);
}

TEST_F(SerialEngineTest, CancelStopsAtOnce) {
  auto backend = Open(64);
  CompletionRequest r;
  r.prompt = {1, 450};
  r.max_tokens = 40;
  Outcome o = RunOne(*backend, r, /*cancel_after=*/3);
  ASSERT_TRUE(o.done.has_value());
  EXPECT_EQ(o.tokens.size(), 3u);
  EXPECT_EQ(o.done->finish, FinishReason::kCancelled);
}

TEST_F(SerialEngineTest, AnswerIsClampedToTheContext) {
  auto backend = Open(16);
  CompletionRequest r;
  r.prompt = {1, 450, 4996, 17354, 1701};
  r.max_tokens = 100;
  Outcome o = RunOne(*backend, r);
  ASSERT_TRUE(o.done.has_value());
  if (o.done->finish == FinishReason::kLength) EXPECT_EQ(o.tokens.size(), 11u);
  EXPECT_LE(o.tokens.size(), 11u);
}

TEST_F(SerialEngineTest, BadRequestsFailThroughOnDone) {
  auto backend = Open(16);
  CompletionRequest too_long;
  too_long.prompt.assign(16, 450);
  Outcome a = RunOne(*backend, too_long);
  ASSERT_FALSE(a.done.has_value());
  EXPECT_EQ(a.done.error().code(), StatusCode::kResourceExhausted);
  CompletionRequest bad_id;
  bad_id.prompt = {1, 1 << 30};
  Outcome b = RunOne(*backend, bad_id);
  EXPECT_FALSE(b.done.has_value());
  EXPECT_TRUE(a.tokens.empty() && b.tokens.empty());
  // Still serving.
  CompletionRequest ok;
  ok.prompt = {1, 450};
  ok.max_tokens = 2;
  EXPECT_TRUE(RunOne(*backend, ok).done.has_value());
}

TEST_F(SerialEngineTest, ShutdownEndsEveryRequestExactlyOnce) {
  auto backend = Open(512);
  constexpr int kRequests = 5;
  std::atomic<int> done{0}, failed{0};
  for (int i = 0; i < kRequests; ++i) {
    CompletionRequest r;
    r.prompt = {1, 450};
    r.max_tokens = 400;
    CompletionCallbacks cb;
    cb.on_token = [](int32_t) { return true; };
    cb.on_done = [&](Result<CompletionUsage> u) {
      ++done;
      if (!u) ++failed;
    };
    backend->Submit(std::move(r), std::move(cb));
  }
  backend.reset();
  EXPECT_EQ(done.load(), kRequests);
  EXPECT_GE(failed.load(), kRequests - 1);  // all but the one that may have finished
}

}  // namespace
}  // namespace llmcache::engine
