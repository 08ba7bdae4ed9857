// Test helpers for Pier: status matchers (this Abseil has none) and a
// temporary directory that removes itself.
//
//   EXPECT_THAT(store.Get(d), StatusIs(absl::StatusCode::kNotFound));
//   ASSERT_OK(store.Put(...));
//   ASSERT_OK_AND_ASSIGN(auto blob, store.Get(d));
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pier::testing {

inline const absl::Status& GetStatus(const absl::Status& s) { return s; }
template <typename T>
const absl::Status& GetStatus(const absl::StatusOr<T>& s) {
  return s.status();
}

MATCHER(IsOk, "is OK") {
  const absl::Status& s = ::pier::testing::GetStatus(arg);
  if (!s.ok()) *result_listener << "status is " << s;
  return s.ok();
}

MATCHER_P(StatusIs, code, "has status code " + ::testing::PrintToString(code)) {
  const absl::Status& s = ::pier::testing::GetStatus(arg);
  *result_listener << "status is " << s;
  return s.code() == code;
}

MATCHER_P2(StatusIs, code, message_matcher, "has status code " + ::testing::PrintToString(code)) {
  const absl::Status& s = ::pier::testing::GetStatus(arg);
  *result_listener << "status is " << s;
  return s.code() == code &&
         ::testing::ExplainMatchResult(message_matcher, std::string(s.message()), result_listener);
}

// A fresh directory under $TMPDIR (or /tmp), removed with its contents on
// destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string Sub(const std::string& rel) const { return path_ + "/" + rel; }

 private:
  std::string path_;
};

}  // namespace pier::testing

#define PIER_TESTING_CONCAT_INNER_(a, b) a##b
#define PIER_TESTING_CONCAT_(a, b) PIER_TESTING_CONCAT_INNER_(a, b)

#define ASSERT_OK(expr) ASSERT_THAT((expr), ::pier::testing::IsOk())
#define EXPECT_OK(expr) EXPECT_THAT((expr), ::pier::testing::IsOk())
#define ASSERT_OK_AND_ASSIGN(lhs, expr)                                           \
  auto PIER_TESTING_CONCAT_(pier_or_, __LINE__) = (expr);                         \
  ASSERT_THAT(PIER_TESTING_CONCAT_(pier_or_, __LINE__), ::pier::testing::IsOk()); \
  lhs = std::move(PIER_TESTING_CONCAT_(pier_or_, __LINE__)).value()
