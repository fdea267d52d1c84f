#include "common/hash.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>

#include "llmcache/clock.h"
#include "llmcache/status.h"

namespace llmcache {
namespace {

TEST(HashTest, Sha256MatchesKnownVector) {
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

// The context is reused per thread: a long input and the calls after it
// must not carry state over.
TEST(HashTest, Sha256ReusedContextCarriesNothingOver) {
  const std::string million(1'000'000, 'a');
  EXPECT_EQ(Sha256Hex(million), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  std::string other_thread;
  std::thread([&] { other_thread = Sha256Hex("abc"); }).join();
  EXPECT_EQ(other_thread, Sha256Hex("abc"));
}

TEST(HashTest, Xxh3DiffersOnOneByte) {
  EXPECT_NE(Xxh3("hello"), Xxh3("hellp"));
  EXPECT_EQ(Xxh3("hello"), Xxh3("hello"));
}

TEST(StatusTest, CarriesCodeAndMessage) {
  Status s = Status::Corruption("bad checksum");
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(s.IsCorruption());
  EXPECT_EQ(s.ToString(), "Corruption: bad checksum");
  Result<int> r = Err(Status::NotFound());
  EXPECT_FALSE(r.has_value());
  EXPECT_TRUE(r.error().IsNotFound());
}

TEST(ClockTest, ManualClockMovesOnlyWhenTold) {
  ManualClock c(1000);
  EXPECT_EQ(c.NowMillis(), 1000);
  c.Advance(500);
  EXPECT_EQ(c.NowMillis(), 1500);
  EXPECT_GT(SystemClock()->NowMillis(), 1'600'000'000'000);
}

}  // namespace
}  // namespace llmcache
