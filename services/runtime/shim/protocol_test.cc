#include "services/runtime/shim/protocol.h"

#include "gtest/gtest.h"
#include "lib/common/testing.h"

namespace pier::runtime::shim {
namespace {

using ::pier::testing::StatusIs;

TEST(ProtocolTest, FramesSplitAcrossFeeds) {
  std::string bytes = EncodeFrame(FrameType::kRequest, R"({"op":"state"})") +
                      EncodeFrame(FrameType::kStdout, std::string("a\0b", 3)) +
                      EncodeFrame(FrameType::kCloseStdin, "");
  FrameDecoder d;
  std::vector<Frame> got;
  for (char c : bytes) {
    d.Feed(absl::string_view(&c, 1));
    ASSERT_OK_AND_ASSIGN(auto f, d.Next());
    if (f) got.push_back(*f);
  }
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].type, FrameType::kRequest);
  EXPECT_EQ(got[0].payload, R"({"op":"state"})");
  EXPECT_EQ(got[1].payload, std::string("a\0b", 3));
  EXPECT_EQ(got[2].type, FrameType::kCloseStdin);
}

TEST(ProtocolTest, RejectsOversizedAndUnknownFrames) {
  FrameDecoder d;
  d.Feed(std::string("\x7f\0\0\0R", 5));
  EXPECT_THAT(d.Next(), StatusIs(absl::StatusCode::kInvalidArgument));
  FrameDecoder e;
  e.Feed(std::string("\0\0\0\0Z", 5));
  EXPECT_THAT(e.Next(), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(ProtocolTest, AnswersCarryStatus) {
  EXPECT_OK(ParseAnswer(R"({"ok":true,"pid":3})"));
  EXPECT_THAT(ParseAnswer(R"({"ok":false,"code":5,"message":"gone"})"),
              StatusIs(absl::StatusCode::kNotFound, "gone"));
  EXPECT_THAT(ParseAnswer("x"), StatusIs(absl::StatusCode::kInternal));
}

TEST(ProtocolTest, ExitRecordRoundTrip) {
  ExitRecord r{{0, 9, true}, absl::FromUnixSeconds(1700000000)};
  ASSERT_OK_AND_ASSIGN(ExitRecord b, ExitRecordFromJson(ExitRecordToJson(r)));
  EXPECT_EQ(b.status.signal, 9);
  EXPECT_TRUE(b.status.oom_killed);
  EXPECT_EQ(b.status.ExitCode(), 137);
  EXPECT_EQ(b.finished_at, r.finished_at);
}

}  // namespace
}  // namespace pier::runtime::shim
