// Tests for pier_registry_auth: htpasswd files, bearer tokens and the
// Authorizer. Time is a fake clock; nothing sleeps.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "lib/common/fs.h"
#include "lib/common/testing.h"
#include "services/registry/auth/authorizer.h"
#include "services/registry/auth/htpasswd.h"
#include "services/registry/auth/token.h"

namespace pier::registry::auth {
namespace {

using ::pier::testing::StatusIs;
using ::pier::testing::TempDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::StartsWith;

// Produced by `htpasswd -nbB alice s3cret` (apache2-utils 2.4, cost 5).
constexpr char kHtpasswdToolLine[] =
    "alice:$2y$05$XB.HdqB5Pq6SbWrlcHp.K.JX1u3C/xjSJSwtSp/5dKExGts6fgu8u";

// The cheapest bcrypt cost keeps the tests fast.
constexpr int kTestCost = 4;

const absl::Time kStart = absl::FromUnixSeconds(1700000000);  // 2023-11-14T22:13:20Z

std::string Entry(absl::string_view user, absl::string_view password) {
  absl::StatusOr<std::string> hash = HashPassword(password, kTestCost);
  EXPECT_TRUE(hash.ok()) << hash.status();
  return absl::StrCat(user, ":", hash.ok() ? *hash : "", "\n");
}

std::string BasicHeader(absl::string_view user, absl::string_view password) {
  return absl::StrCat("Basic ", absl::Base64Escape(absl::StrCat(user, ":", password)));
}

// Moves the file's mtime `seconds` past its current value, as an edit made
// later would.
void BumpMtime(const std::string& path, int seconds) {
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  struct timespec times[2];
  times[0] = st.st_atim;
  times[1] = st.st_mtim;
  times[1].tv_sec += seconds;
  ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), times, 0), 0);
}

// Overwrites `path` in place (same inode), as an editor might.
void OverwriteInPlace(const std::string& path, absl::string_view data) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_TRUNC));
  ASSERT_TRUE(fd.valid());
  ASSERT_OK(WriteAll(fd.get(), data, path));
}

// ---------------------------------------------------------------------------
// htpasswd

TEST(HashPasswordTest, ProducesBcryptEntries) {
  ASSERT_OK_AND_ASSIGN(std::string hash, HashPassword("s3cret", kTestCost));
  EXPECT_THAT(hash, StartsWith("$2y$04$"));
  EXPECT_EQ(hash.size(), 60u);
  ASSERT_OK_AND_ASSIGN(std::string again, HashPassword("s3cret", kTestCost));
  EXPECT_NE(hash, again);  // fresh salt each time
}

TEST(HashPasswordTest, RejectsBadInput) {
  EXPECT_THAT(HashPassword("pw", 3), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(HashPassword("pw", 32), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(HashPassword(std::string(73, 'x'), kTestCost),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("72")));
  EXPECT_THAT(HashPassword(absl::string_view("a\0b", 3), kTestCost),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("NUL")));
}

TEST(HtpasswdTest, LoadsAndVerifies) {
  TempDir dir;
  std::string path = dir.Sub("htpasswd");
  ASSERT_OK(
      WriteFileAtomic(path, absl::StrCat("# users\n", Entry("alice", "s3cret"), "\n   \n",
                                         "  # indented comment\r\n", Entry("bob", "hunter2"))));
  ASSERT_OK_AND_ASSIGN(auto file, HtpasswdFile::Open(path));
  EXPECT_EQ(file->Size(), 2u);
  EXPECT_OK(file->Verify("alice", "s3cret"));
  EXPECT_OK(file->Verify("bob", "hunter2"));
}

TEST(HtpasswdTest, WrongPasswordAndUnknownUserLookAlike) {
  TempDir dir;
  std::string path = dir.Sub("htpasswd");
  ASSERT_OK(WriteFileAtomic(path, Entry("alice", "s3cret")));
  ASSERT_OK_AND_ASSIGN(auto file, HtpasswdFile::Open(path));
  absl::Status wrong_password = file->Verify("alice", "S3cret");
  absl::Status unknown_user = file->Verify("mallory", "s3cret");
  EXPECT_THAT(wrong_password,
              StatusIs(absl::StatusCode::kUnauthenticated, "invalid username or password"));
  EXPECT_EQ(wrong_password, unknown_user);
  EXPECT_THAT(file->Verify("alice", ""), StatusIs(absl::StatusCode::kUnauthenticated));
  EXPECT_THAT(file->Verify("", "s3cret"), StatusIs(absl::StatusCode::kUnauthenticated));
  // A NUL must not truncate the password to a matching prefix.
  EXPECT_THAT(file->Verify("alice", absl::string_view("s3cret\0x", 8)),
              StatusIs(absl::StatusCode::kUnauthenticated));
}

TEST(HtpasswdTest, AcceptsLineFromHtpasswdTool) {
  TempDir dir;
  std::string path = dir.Sub("htpasswd");
  // The same hash under the $2a$ and $2b$ prefixes (identical for ASCII
  // passwords) is accepted too.
  std::string line_2a = absl::StrReplaceAll(kHtpasswdToolLine, {{"alice:$2y$", "carol:$2a$"}});
  std::string line_2b = absl::StrReplaceAll(kHtpasswdToolLine, {{"alice:$2y$", "dave:$2b$"}});
  ASSERT_OK(WriteFileAtomic(path, absl::StrCat(kHtpasswdToolLine, "\n", line_2a, "\n", line_2b)));
  ASSERT_OK_AND_ASSIGN(auto file, HtpasswdFile::Open(path));
  EXPECT_OK(file->Verify("alice", "s3cret"));
  EXPECT_OK(file->Verify("carol", "s3cret"));
  EXPECT_OK(file->Verify("dave", "s3cret"));
  EXPECT_THAT(file->Verify("alice", "secret"), StatusIs(absl::StatusCode::kUnauthenticated));
}

TEST(HtpasswdTest, AcceptsFreshLineFromHtpasswdTool) {
  if (::access("/usr/bin/htpasswd", X_OK) != 0) {
    FAIL() << "required: htpasswd (apache2-utils) not installed";
  }
  FILE* pipe = ::popen("/usr/bin/htpasswd -nbB -C 4 erin 'open sesame' 2>/dev/null", "r");
  ASSERT_NE(pipe, nullptr);
  std::string out;
  char buf[256];
  while (size_t n = std::fread(buf, 1, sizeof(buf), pipe)) out.append(buf, n);
  ASSERT_EQ(::pclose(pipe), 0);
  ASSERT_THAT(out, StartsWith("erin:$2y$04$"));
  TempDir dir;
  std::string path = dir.Sub("htpasswd");
  ASSERT_OK(WriteFileAtomic(path, out));
  ASSERT_OK_AND_ASSIGN(auto file, HtpasswdFile::Open(path));
  EXPECT_OK(file->Verify("erin", "open sesame"));
  EXPECT_THAT(file->Verify("erin", "open sesame!"), StatusIs(absl::StatusCode::kUnauthenticated));
}

TEST(HtpasswdTest, RefusesOtherSchemesAndMalformedLines) {
  TempDir dir;
  std::string path = dir.Sub("htpasswd");
  std::string good = Entry("alice", "s3cret");
  struct Case {
    std::string line;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"bob:$apr1$abcdefgh$0123456789abcdefghijkl", ":2: unsupported hash scheme for user \"bob\""},
      {"bob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", ":2: unsupported hash scheme"},
      {"bob:plaintext", ":2: unsupported hash scheme"},
      {"bob:", ":2: unsupported hash scheme"},
      {"bob:$2y$05$tooshort", ":2: malformed bcrypt hash for user \"bob\""},
      {"bob:$2y$99$XB.HdqB5Pq6SbWrlcHp.K.JX1u3C/xjSJSwtSp/5dKExGts6fgu8u", ":2: malformed bcrypt"},
      {"no colon here", ":2: expected \"user:hash\""},
      {":$2y$05$XB.HdqB5Pq6SbWrlcHp.K.JX1u3C/xjSJSwtSp/5dKExGts6fgu8u", ":2: empty user name"},
      {"alice:$2y$05$XB.HdqB5Pq6SbWrlcHp.K.JX1u3C/xjSJSwtSp/5dKExGts6fgu8u",
       ":2: duplicate user \"alice\" (first on line 1)"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.line);
    ASSERT_OK(WriteFileAtomic(path, absl::StrCat(good, c.line, "\n")));
    EXPECT_THAT(HtpasswdFile::Open(path),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(path + c.message)));
  }
  EXPECT_THAT(HtpasswdFile::Open(dir.Sub("missing")), StatusIs(absl::StatusCode::kNotFound));
}

TEST(HtpasswdTest, ReloadsWhenTheFileChanges) {
  TempDir dir;
  std::string path = dir.Sub("htpasswd");
  absl::Time now = kStart;
  HtpasswdFile::Options options;
  options.clock = [&now] { return now; };
  // Same user, new password: the file keeps its size and inode, so only the
  // mtime tells the versions apart.
  std::string before = Entry("alice", "old-password");
  std::string after = Entry("alice", "new-password");
  ASSERT_EQ(before.size(), after.size());
  ASSERT_OK(WriteFileAtomic(path, before));
  ASSERT_OK_AND_ASSIGN(auto file, HtpasswdFile::Open(path, options));
  EXPECT_OK(file->Verify("alice", "old-password"));

  OverwriteInPlace(path, after);
  BumpMtime(path, 10);
  // Within the check interval the loaded entries stay in use...
  now += absl::Milliseconds(500);
  EXPECT_OK(file->Verify("alice", "old-password"));
  // ...after it, the change is seen.
  now += absl::Seconds(1);
  EXPECT_OK(file->Verify("alice", "new-password"));
  EXPECT_THAT(file->Verify("alice", "old-password"), StatusIs(absl::StatusCode::kUnauthenticated));

  // New users appear on reload; a broken file keeps the last good entries.
  ASSERT_OK(WriteFileAtomic(path, absl::StrCat(after, Entry("bob", "hunter2"))));
  BumpMtime(path, 20);
  now += absl::Seconds(2);
  EXPECT_OK(file->Verify("bob", "hunter2"));
  EXPECT_EQ(file->Size(), 2u);

  ASSERT_OK(WriteFileAtomic(path, "bob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n"));
  BumpMtime(path, 30);
  now += absl::Seconds(2);
  EXPECT_OK(file->Verify("bob", "hunter2"));
  EXPECT_THAT(file->Reload(), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(file->Size(), 2u);
}

// ---------------------------------------------------------------------------
// Scopes

TEST(ScopeTest, ParsesValidScopes) {
  ASSERT_OK_AND_ASSIGN(ResourceScope scope, ParseScope("repository:library/busybox:pull,push"));
  EXPECT_EQ(scope.type, "repository");
  EXPECT_EQ(scope.name, "library/busybox");
  EXPECT_THAT(scope.actions, ElementsAre("pull", "push"));
  EXPECT_EQ(scope.ToString(), "repository:library/busybox:pull,push");

  ASSERT_OK_AND_ASSIGN(scope, ParseScope("registry:catalog:*"));
  EXPECT_EQ(scope, (ResourceScope{"registry", "catalog", {"*"}}));
  ASSERT_OK_AND_ASSIGN(scope, ParseScope("repository(plugin):vieux/sshfs:pull"));
  EXPECT_EQ(scope, (ResourceScope{"repository(plugin)", "vieux/sshfs", {"pull"}}));
  ASSERT_OK_AND_ASSIGN(scope, ParseScope("repository:a/b-c_d.e:pull,pull,delete"));
  EXPECT_THAT(scope.actions, ElementsAre("pull", "delete"));
}

TEST(ScopeTest, RejectsInvalidScopes) {
  for (const char* bad :
       {"", "repository", "repository:busybox", "repository:Busybox:pull", "repository::pull",
        "repository:busybox:", "repository:busybox:PULL", "repository:busybox:pull,,push",
        "Repository:busybox:pull", "repo sitory:busybox:pull", "repository(:busybox:pull",
        "repository:/busybox:pull", "registry:cat\"alog:*"}) {
    SCOPED_TRACE(bad);
    EXPECT_THAT(ParseScope(bad),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("invalid scope")));
  }
}

TEST(ScopeTest, ParsesRepeatedAndSpaceSeparatedParameters) {
  ASSERT_OK_AND_ASSIGN(
      std::vector<ResourceScope> scopes,
      ParseScopes({"repository:a:pull  repository:b:pull,push", "", "registry:catalog:*"}));
  ASSERT_EQ(scopes.size(), 3u);
  EXPECT_EQ(scopes[0].name, "a");
  EXPECT_EQ(scopes[1].name, "b");
  EXPECT_EQ(scopes[2].type, "registry");
  EXPECT_THAT(ParseScopes({"repository:a:pull repository:B:pull"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("repository:B:pull")));
}

// ---------------------------------------------------------------------------
// Tokens

class TokenTest : public ::testing::Test {
 protected:
  TokenClaims Claims() const {
    TokenClaims claims;
    claims.issuer = "pier-issuer";
    claims.subject = "alice";
    claims.audience = "pier-registry";
    claims.issued_at = kStart;
    claims.not_before = kStart;
    claims.expires_at = kStart + absl::Minutes(5);
    claims.id = "0123456789abcdef";
    claims.access = {{"repository", "library/busybox", {"pull", "push"}}};
    return claims;
  }
  TokenExpectations Expect(absl::Time now = kStart) const {
    TokenExpectations expect;
    expect.issuer = "pier-issuer";
    expect.audience = "pier-registry";
    expect.now = now;
    return expect;
  }
  static std::string B64(absl::string_view s) {
    std::string out;
    absl::WebSafeBase64Escape(s, &out);
    return out;
  }

  const std::string key_ = std::string(32, 'k');
};

TEST_F(TokenTest, RoundTrip) {
  ASSERT_OK_AND_ASSIGN(std::string token, SignToken(Claims(), key_));
  std::vector<std::string> parts = absl::StrSplit(token, '.');
  ASSERT_EQ(parts.size(), 3u);
  std::string header;
  ASSERT_TRUE(absl::WebSafeBase64Unescape(parts[0], &header));
  EXPECT_EQ(header, R"({"alg":"HS256","typ":"JWT"})");
  std::string payload;
  ASSERT_TRUE(absl::WebSafeBase64Unescape(parts[1], &payload));
  nlohmann::json claims_json = nlohmann::json::parse(payload, nullptr, false);
  ASSERT_FALSE(claims_json.is_discarded());
  EXPECT_EQ(claims_json["exp"], 1700000300);
  EXPECT_EQ(claims_json["access"][0]["actions"][1], "push");
  EXPECT_EQ(token.find('='), std::string::npos);

  ASSERT_OK_AND_ASSIGN(TokenClaims claims, VerifyToken(token, key_, Expect()));
  EXPECT_EQ(claims.issuer, "pier-issuer");
  EXPECT_EQ(claims.subject, "alice");
  EXPECT_EQ(claims.audience, "pier-registry");
  EXPECT_EQ(claims.expires_at, kStart + absl::Minutes(5));
  EXPECT_EQ(claims.not_before, kStart);
  EXPECT_EQ(claims.issued_at, kStart);
  EXPECT_EQ(claims.id, "0123456789abcdef");
  EXPECT_EQ(claims.access, Claims().access);
}

TEST_F(TokenTest, RefusesTamperedTokens) {
  ASSERT_OK_AND_ASSIGN(std::string token, SignToken(Claims(), key_));
  std::vector<std::string> parts = absl::StrSplit(token, '.');

  // Another payload under the original signature.
  TokenClaims wider = Claims();
  wider.access[0].name = "library/other";
  ASSERT_OK_AND_ASSIGN(std::string other, SignToken(wider, key_));
  std::vector<std::string> other_parts = absl::StrSplit(other, '.');
  std::string swapped = absl::StrCat(parts[0], ".", other_parts[1], ".", parts[2]);
  EXPECT_THAT(VerifyToken(swapped, key_, Expect()),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("signature mismatch")));

  // One signature character changed.
  std::string flipped = token;
  flipped.back() = flipped.back() == 'A' ? 'B' : 'A';
  EXPECT_THAT(VerifyToken(flipped, key_, Expect()),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("signature mismatch")));

  // Signed with another key.
  EXPECT_THAT(VerifyToken(token, std::string(32, 'x'), Expect()),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("signature mismatch")));

  for (const std::string& junk :
       {std::string("abc"), std::string("a.b"), std::string("a.b.c.d"), std::string(".."),
        absl::StrCat(parts[0], ".", parts[1], ".", parts[2], "=")}) {
    SCOPED_TRACE(junk);
    EXPECT_THAT(VerifyToken(junk, key_, Expect()), StatusIs(absl::StatusCode::kUnauthenticated));
  }
}

TEST_F(TokenTest, AcceptsOnlyHs256) {
  std::string payload = R"({"iss":"pier-issuer","aud":"pier-registry","exp":1700000300})";
  // alg "none" with no signature, the classic forgery.
  std::string unsigned_token =
      absl::StrCat(B64(R"({"alg":"none","typ":"JWT"})"), ".", B64(payload), ".");
  EXPECT_THAT(VerifyToken(unsigned_token, key_, Expect()),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("alg \"none\"")));
  // alg "none" or another algorithm even with a valid HMAC is refused.
  for (const char* header : {R"({"alg":"none"})", R"({"alg":"HS512"})", R"({"alg":"RS256"})",
                             R"({"alg":"hs256"})", R"({"typ":"JWT"})", R"({"alg":1})", "[]"}) {
    SCOPED_TRACE(header);
    ASSERT_OK_AND_ASSIGN(std::string token, SignJws(header, payload, key_));
    EXPECT_THAT(VerifyToken(token, key_, Expect()), StatusIs(absl::StatusCode::kUnauthenticated));
  }
  ASSERT_OK_AND_ASSIGN(std::string crit,
                       SignJws(R"({"alg":"HS256","crit":["exp"],"exp":1})", payload, key_));
  EXPECT_THAT(VerifyToken(crit, key_, Expect()), StatusIs(absl::StatusCode::kUnauthenticated));
  // The same payload with the right header verifies.
  ASSERT_OK_AND_ASSIGN(std::string good, SignJws(R"({"alg":"HS256"})", payload, key_));
  EXPECT_OK(VerifyToken(good, key_, Expect()));
}

TEST_F(TokenTest, ChecksExpiryAndNotBeforeWithSkew) {
  ASSERT_OK_AND_ASSIGN(std::string token, SignToken(Claims(), key_));
  absl::Time exp = kStart + absl::Minutes(5);
  EXPECT_OK(VerifyToken(token, key_, Expect(exp - absl::Seconds(1))));
  EXPECT_OK(VerifyToken(token, key_, Expect(exp + kTokenClockSkew - absl::Seconds(1))));
  EXPECT_THAT(VerifyToken(token, key_, Expect(exp + kTokenClockSkew)),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("expired")));

  EXPECT_OK(VerifyToken(token, key_, Expect(kStart - kTokenClockSkew)));
  EXPECT_THAT(VerifyToken(token, key_, Expect(kStart - kTokenClockSkew - absl::Seconds(1))),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("not yet valid")));

  // A token that expired before it was issued is refused right away.
  TokenClaims past = Claims();
  past.expires_at = kStart - absl::Hours(1);
  ASSERT_OK_AND_ASSIGN(std::string stale, SignToken(past, key_));
  EXPECT_THAT(VerifyToken(stale, key_, Expect()),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("expired")));

  // exp is required.
  ASSERT_OK_AND_ASSIGN(
      std::string no_exp,
      SignJws(R"({"alg":"HS256"})", R"({"iss":"pier-issuer","aud":"pier-registry"})", key_));
  EXPECT_THAT(VerifyToken(no_exp, key_, Expect()),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("no exp")));
}

TEST_F(TokenTest, ChecksIssuerAndAudience) {
  ASSERT_OK_AND_ASSIGN(std::string token, SignToken(Claims(), key_));
  TokenExpectations other_audience = Expect();
  other_audience.audience = "another-registry";
  EXPECT_THAT(VerifyToken(token, key_, other_audience),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("audience mismatch")));
  TokenExpectations other_issuer = Expect();
  other_issuer.issuer = "someone-else";
  EXPECT_THAT(VerifyToken(token, key_, other_issuer),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("issuer mismatch")));

  // RFC 7519 allows aud to be an array.
  ASSERT_OK_AND_ASSIGN(std::string array_aud,
                       SignJws(R"({"alg":"HS256"})",
                               R"({"iss":"pier-issuer","aud":["x","pier-registry"],)"
                               R"("exp":1700000300})",
                               key_));
  EXPECT_OK(VerifyToken(array_aud, key_, Expect()));

  ASSERT_OK_AND_ASSIGN(std::string bad_access,
                       SignJws(R"({"alg":"HS256"})",
                               R"({"iss":"pier-issuer","aud":"pier-registry",)"
                               R"("exp":1700000300,"access":[{"type":"repository"}]})",
                               key_));
  EXPECT_THAT(VerifyToken(bad_access, key_, Expect()),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("access")));
}

TEST(TokenKeyTest, CreatesPrivateKeyOnceAndReusesIt) {
  TempDir dir;
  std::string path = dir.Sub("token.key");
  ASSERT_OK_AND_ASSIGN(std::string key, LoadOrCreateTokenKey(path));
  EXPECT_EQ(key.size(), kTokenKeySize);
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_OK_AND_ASSIGN(std::string again, LoadOrCreateTokenKey(path));
  EXPECT_EQ(key, again);

  ASSERT_OK(WriteFileAtomic(dir.Sub("short.key"), "tooshort", 0600));
  EXPECT_THAT(LoadOrCreateTokenKey(dir.Sub("short.key")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("need at least 32")));
  EXPECT_THAT(LoadOrCreateTokenKey(dir.Sub("no/such/dir/token.key")),
              StatusIs(absl::StatusCode::kNotFound));
}

// ---------------------------------------------------------------------------
// Authorizer

class AuthorizerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK(WriteFileAtomic(htpasswd_path_,
                              absl::StrCat(Entry("alice", "s3cret"), Entry("bob", "hunter2"))));
  }

  AuthConfig Config(AuthMode mode) {
    AuthConfig config;
    config.mode = mode;
    config.htpasswd_path = htpasswd_path_;
    config.token_realm = "https://127.0.0.1:5000/token";
    config.token_service = "pier-registry";
    config.token_issuer = "pier-token-issuer";
    config.token_key_path = dir_.Sub("token.key");
    config.clock = [this] { return now_; };
    return config;
  }

  std::unique_ptr<Authorizer> Make(AuthConfig config) {
    absl::StatusOr<std::unique_ptr<Authorizer>> authorizer = Authorizer::Create(std::move(config));
    EXPECT_TRUE(authorizer.ok()) << authorizer.status();
    return authorizer.ok() ? std::move(*authorizer) : nullptr;
  }

  // Issues a token for alice with `scopes` and returns the Authorization header.
  std::string BearerFor(const Authorizer& authorizer, std::vector<std::string> scopes,
                        std::optional<std::string> basic = BasicHeader("alice", "s3cret")) {
    absl::StatusOr<TokenResponse> response =
        authorizer.IssueToken(basic ? std::optional<absl::string_view>(*basic) : std::nullopt,
                              "pier-registry", scopes, "");
    EXPECT_TRUE(response.ok()) << response.status();
    return absl::StrCat("Bearer ", response.ok() ? response->token : "");
  }

  TempDir dir_;
  const std::string htpasswd_path_ = dir_.Sub("htpasswd");
  absl::Time now_ = kStart;
};

TEST_F(AuthorizerTest, ChecksConfig) {
  AuthConfig basic = Config(AuthMode::kBasic);
  basic.htpasswd_path.clear();
  EXPECT_THAT(Authorizer::Create(basic), StatusIs(absl::StatusCode::kInvalidArgument));
  AuthConfig token = Config(AuthMode::kToken);
  token.token_realm.clear();
  EXPECT_THAT(Authorizer::Create(token), StatusIs(absl::StatusCode::kInvalidArgument));
  token = Config(AuthMode::kToken);
  token.token_key_path.clear();
  EXPECT_THAT(Authorizer::Create(token), StatusIs(absl::StatusCode::kInvalidArgument));
  token = Config(AuthMode::kToken);
  token.token_ttl = absl::ZeroDuration();
  EXPECT_THAT(Authorizer::Create(token), StatusIs(absl::StatusCode::kInvalidArgument));
  basic = Config(AuthMode::kBasic);
  basic.htpasswd_path = dir_.Sub("missing");
  EXPECT_THAT(Authorizer::Create(basic), StatusIs(absl::StatusCode::kNotFound));

  EXPECT_THAT(ParseAuthMode("token"), ::pier::testing::IsOk());
  EXPECT_EQ(*ParseAuthMode("basic"), AuthMode::kBasic);
  EXPECT_THAT(ParseAuthMode("Token"), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(AuthorizerTest, NoneModeAllowsEverything) {
  auto authorizer = Make(Config(AuthMode::kNone));
  ASSERT_NE(authorizer, nullptr);
  ASSERT_OK_AND_ASSIGN(Identity identity, authorizer->Authenticate("Bearer garbage"));
  EXPECT_TRUE(identity.anonymous());
  EXPECT_OK(authorizer->Authorize(identity, "library/busybox", Action::kPush));
  EXPECT_OK(authorizer->Authorize(identity, "", Action::kCatalog));
  EXPECT_EQ(authorizer->Challenge("library/busybox", Action::kPush), "");
}

TEST_F(AuthorizerTest, BasicModeAuthenticatesUsers) {
  auto authorizer = Make(Config(AuthMode::kBasic));
  ASSERT_NE(authorizer, nullptr);
  ASSERT_OK_AND_ASSIGN(Identity alice, authorizer->Authenticate(BasicHeader("alice", "s3cret")));
  EXPECT_EQ(alice.user, "alice");
  EXPECT_TRUE(alice.all);
  EXPECT_OK(authorizer->Authorize(alice, "library/busybox", Action::kPush));
  EXPECT_OK(authorizer->Authorize(alice, "library/busybox", Action::kDelete));
  EXPECT_OK(authorizer->Authorize(alice, "", Action::kCatalog));
  EXPECT_THAT(authorizer->Authorize(alice, "Not/Valid", Action::kPull),
              StatusIs(absl::StatusCode::kInvalidArgument));

  // The scheme is case-insensitive; a password may contain ':'.
  ASSERT_OK(WriteFileAtomic(htpasswd_path_, Entry("carol", "a:b")));
  now_ += absl::Seconds(2);
  BumpMtime(htpasswd_path_, 10);
  std::string header = BasicHeader("carol", "a:b");
  header.replace(0, 5, "bAsIc");
  EXPECT_OK(authorizer->Authenticate(header));

  for (const std::string& bad : {BasicHeader("carol", "wrong"), BasicHeader("nobody", "a:b")}) {
    EXPECT_THAT(authorizer->Authenticate(bad),
                StatusIs(absl::StatusCode::kUnauthenticated, "invalid username or password"));
  }
  EXPECT_THAT(authorizer->Authenticate("Basic !!!notbase64"),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("malformed")));
  EXPECT_THAT(authorizer->Authenticate(absl::StrCat("Basic ", absl::Base64Escape("nocolon"))),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("malformed")));
  EXPECT_THAT(authorizer->Authenticate("Bearer abc.def.ghi"),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("Bearer")));
  EXPECT_THAT(authorizer->Authenticate("Digest username=\"x\""),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("unsupported")));
  EXPECT_EQ(authorizer->Challenge("library/busybox", Action::kPull),
            "Basic realm=\"pier-registry\"");
  EXPECT_EQ(authorizer->Challenge("library/busybox", Action::kPush, "insufficient_scope"),
            "Basic realm=\"pier-registry\"");
}

TEST_F(AuthorizerTest, AnonymousPullOnlyWhenEnabled) {
  for (AuthMode mode : {AuthMode::kBasic, AuthMode::kToken}) {
    SCOPED_TRACE(static_cast<int>(mode));
    AuthConfig config = Config(mode);
    auto closed = Make(config);
    config.anonymous_pull = true;
    auto open = Make(config);
    ASSERT_NE(closed, nullptr);
    ASSERT_NE(open, nullptr);
    ASSERT_OK_AND_ASSIGN(Identity anonymous, closed->Authenticate(std::nullopt));
    EXPECT_TRUE(anonymous.anonymous());
    ASSERT_OK_AND_ASSIGN(Identity empty_header, closed->Authenticate(""));
    EXPECT_TRUE(empty_header.anonymous());

    EXPECT_THAT(closed->Authorize(anonymous, "library/busybox", Action::kPull),
                StatusIs(absl::StatusCode::kUnauthenticated,
                         "authentication required to pull repository library/busybox"));
    EXPECT_OK(open->Authorize(anonymous, "library/busybox", Action::kPull));
    for (auto* authorizer : {closed.get(), open.get()}) {
      EXPECT_THAT(authorizer->Authorize(anonymous, "library/busybox", Action::kPush),
                  StatusIs(absl::StatusCode::kUnauthenticated,
                           "authentication required to push repository library/busybox"));
      EXPECT_THAT(authorizer->Authorize(anonymous, "library/busybox", Action::kDelete),
                  StatusIs(absl::StatusCode::kUnauthenticated));
      EXPECT_THAT(authorizer->Authorize(anonymous, "", Action::kCatalog),
                  StatusIs(absl::StatusCode::kUnauthenticated));
    }
  }
}

TEST_F(AuthorizerTest, TokenModeChallenges) {
  auto authorizer = Make(Config(AuthMode::kToken));
  ASSERT_NE(authorizer, nullptr);
  const std::string prefix =
      R"(Bearer realm="https://127.0.0.1:5000/token",service="pier-registry")";
  EXPECT_EQ(authorizer->Challenge("library/busybox", Action::kPull),
            prefix + R"(,scope="repository:library/busybox:pull")");
  EXPECT_EQ(authorizer->Challenge("library/busybox", Action::kPush),
            prefix + R"(,scope="repository:library/busybox:pull,push")");
  EXPECT_EQ(authorizer->Challenge("library/busybox", Action::kPush, "insufficient_scope"),
            prefix + R"(,scope="repository:library/busybox:pull,push",error="insufficient_scope")");
  EXPECT_EQ(authorizer->Challenge("library/busybox", Action::kPull, "invalid_token"),
            prefix + R"(,scope="repository:library/busybox:pull",error="invalid_token")");
  EXPECT_EQ(authorizer->Challenge("library/busybox", Action::kDelete),
            prefix + R"(,scope="repository:library/busybox:delete")");
  EXPECT_EQ(authorizer->Challenge("", Action::kCatalog), prefix + R"(,scope="registry:catalog:*")");
  EXPECT_EQ(authorizer->Challenge("", Action::kPull), prefix);
}

TEST_F(AuthorizerTest, IssuedTokenRoundTrip) {
  auto authorizer = Make(Config(AuthMode::kToken));
  ASSERT_NE(authorizer, nullptr);
  ASSERT_OK_AND_ASSIGN(TokenResponse response,
                       authorizer->IssueToken(BasicHeader("alice", "s3cret"), "pier-registry",
                                              {"repository:library/busybox:pull,push"}, "alice"));
  EXPECT_EQ(response.token, response.access_token);
  EXPECT_EQ(response.expires_in, 300);
  EXPECT_EQ(response.issued_at, "2023-11-14T22:13:20Z");
  EXPECT_THAT(response.granted,
              ElementsAre(ResourceScope{"repository", "library/busybox", {"pull", "push"}}));

  nlohmann::json body = nlohmann::json::parse(response.ToJson(), nullptr, false);
  ASSERT_TRUE(body.is_object());
  EXPECT_EQ(body["token"], response.token);
  EXPECT_EQ(body["access_token"], response.token);
  EXPECT_EQ(body["expires_in"], 300);
  EXPECT_EQ(body["issued_at"], "2023-11-14T22:13:20Z");

  // The claims are what the spec describes.
  TokenExpectations expect;
  expect.issuer = "pier-token-issuer";
  expect.audience = "pier-registry";
  expect.now = now_;
  ASSERT_OK_AND_ASSIGN(std::string key, LoadOrCreateTokenKey(dir_.Sub("token.key")));
  ASSERT_OK_AND_ASSIGN(TokenClaims claims, VerifyToken(response.token, key, expect));
  EXPECT_EQ(claims.subject, "alice");
  EXPECT_EQ(claims.issued_at, kStart);
  EXPECT_EQ(claims.not_before, kStart);
  EXPECT_EQ(claims.expires_at, kStart + absl::Minutes(5));
  EXPECT_EQ(claims.id.size(), 32u);

  ASSERT_OK_AND_ASSIGN(Identity identity,
                       authorizer->Authenticate(absl::StrCat("Bearer ", response.token)));
  EXPECT_EQ(identity.user, "alice");
  EXPECT_EQ(identity.source, Identity::Source::kToken);
  EXPECT_FALSE(identity.all);
  EXPECT_OK(authorizer->Authorize(identity, "library/busybox", Action::kPull));
  EXPECT_OK(authorizer->Authorize(identity, "library/busybox", Action::kPush));
  EXPECT_THAT(authorizer->Authorize(identity, "library/busybox", Action::kDelete),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       "token does not grant delete on repository library/busybox"));
  EXPECT_THAT(authorizer->Authorize(identity, "", Action::kCatalog),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("catalog")));
}

TEST_F(AuthorizerTest, TokenIsBoundToRepositoryAndActions) {
  auto authorizer = Make(Config(AuthMode::kToken));
  ASSERT_NE(authorizer, nullptr);
  ASSERT_OK_AND_ASSIGN(Identity a, authorizer->Authenticate(
                                       BearerFor(*authorizer, {"repository:team/a:pull,push"})));
  EXPECT_OK(authorizer->Authorize(a, "team/a", Action::kPush));
  EXPECT_THAT(authorizer->Authorize(a, "team/b", Action::kPull),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       "token does not grant pull on repository team/b"));
  EXPECT_THAT(authorizer->Authorize(a, "team/a/sub", Action::kPull),
              StatusIs(absl::StatusCode::kPermissionDenied));

  ASSERT_OK_AND_ASSIGN(Identity pull_only, authorizer->Authenticate(
                                               BearerFor(*authorizer, {"repository:team/a:pull"})));
  EXPECT_OK(authorizer->Authorize(pull_only, "team/a", Action::kPull));
  EXPECT_THAT(authorizer->Authorize(pull_only, "team/a", Action::kPush),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       "token does not grant push on repository team/a"));

  // Several scopes, repeated and space-separated, merge per repository;
  // "*" expands to what the user may have.
  ASSERT_OK_AND_ASSIGN(
      TokenResponse wide,
      authorizer->IssueToken(BasicHeader("bob", "hunter2"), "",
                             {"repository:team/a:pull repository:team/b:*",
                              "repository:team/a:push", "registry:catalog:*", "unknown:thing:pull"},
                             ""));
  EXPECT_THAT(wide.granted,
              ElementsAre(ResourceScope{"repository", "team/a", {"pull", "push"}},
                          ResourceScope{"repository", "team/b", {"pull", "push", "delete"}},
                          ResourceScope{"registry", "catalog", {"*"}}));
  ASSERT_OK_AND_ASSIGN(Identity bob, authorizer->Authenticate(absl::StrCat("Bearer ", wide.token)));
  EXPECT_EQ(bob.user, "bob");
  EXPECT_OK(authorizer->Authorize(bob, "team/b", Action::kDelete));
  EXPECT_OK(authorizer->Authorize(bob, "", Action::kCatalog));
}

TEST_F(AuthorizerTest, AnonymousTokens) {
  AuthConfig config = Config(AuthMode::kToken);
  auto closed = Make(config);
  config.anonymous_pull = true;
  auto open = Make(config);
  ASSERT_NE(closed, nullptr);
  ASSERT_NE(open, nullptr);
  const std::vector<std::string> scopes = {"repository:library/busybox:pull,push",
                                           "registry:catalog:*"};

  ASSERT_OK_AND_ASSIGN(TokenResponse none,
                       closed->IssueToken(std::nullopt, "pier-registry", scopes, ""));
  EXPECT_THAT(none.granted, IsEmpty());
  ASSERT_OK_AND_ASSIGN(Identity nobody, closed->Authenticate(absl::StrCat("Bearer ", none.token)));
  EXPECT_TRUE(nobody.anonymous());
  EXPECT_THAT(closed->Authorize(nobody, "library/busybox", Action::kPull),
              StatusIs(absl::StatusCode::kPermissionDenied));

  ASSERT_OK_AND_ASSIGN(TokenResponse pull,
                       open->IssueToken(std::nullopt, "pier-registry", scopes, "ignored"));
  EXPECT_THAT(pull.granted, ElementsAre(ResourceScope{"repository", "library/busybox", {"pull"}}));
  std::string header = absl::StrCat("Bearer ", pull.token);
  ASSERT_OK_AND_ASSIGN(Identity anonymous, open->Authenticate(header));
  EXPECT_OK(open->Authorize(anonymous, "library/busybox", Action::kPull));
  EXPECT_THAT(open->Authorize(anonymous, "library/busybox", Action::kPush),
              StatusIs(absl::StatusCode::kPermissionDenied));
  // The anonymous token does not outlive the policy that issued it.
  ASSERT_OK_AND_ASSIGN(Identity replayed, closed->Authenticate(header));
  EXPECT_THAT(closed->Authorize(replayed, "library/busybox", Action::kPull),
              StatusIs(absl::StatusCode::kPermissionDenied));
}

TEST_F(AuthorizerTest, TokenEndpointRefusals) {
  auto authorizer = Make(Config(AuthMode::kToken));
  ASSERT_NE(authorizer, nullptr);
  const std::vector<std::string> scopes = {"repository:library/busybox:pull"};
  const std::string alice = BasicHeader("alice", "s3cret");
  EXPECT_THAT(authorizer->IssueToken(alice, "other-registry", scopes, ""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unknown service")));
  EXPECT_THAT(authorizer->IssueToken(alice, "pier-registry", {"repository:BAD:pull"}, ""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("invalid scope")));
  EXPECT_THAT(authorizer->IssueToken(alice, "pier-registry", scopes, "bob"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("account")));
  EXPECT_THAT(
      authorizer->IssueToken(BasicHeader("alice", "wrong"), "pier-registry", scopes, "alice"),
      StatusIs(absl::StatusCode::kUnauthenticated, "invalid username or password"));
  EXPECT_THAT(authorizer->IssueToken(BasicHeader("mallory", "s3cret"), "pier-registry", scopes, ""),
              StatusIs(absl::StatusCode::kUnauthenticated, "invalid username or password"));
  std::string bearer = BearerFor(*authorizer, scopes);
  EXPECT_THAT(authorizer->IssueToken(bearer, "pier-registry", scopes, ""),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("Basic")));
  // Basic credentials are for the token endpoint only.
  EXPECT_THAT(authorizer->Authenticate(alice),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("token endpoint")));

  auto basic = Make(Config(AuthMode::kBasic));
  ASSERT_NE(basic, nullptr);
  EXPECT_THAT(basic->IssueToken(alice, "pier-registry", scopes, ""),
              StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST_F(AuthorizerTest, RefusesExpiredForeignAndMisdirectedTokens) {
  auto authorizer = Make(Config(AuthMode::kToken));
  ASSERT_NE(authorizer, nullptr);
  std::string bearer = BearerFor(*authorizer, {"repository:library/busybox:pull"});
  EXPECT_OK(authorizer->Authenticate(bearer));

  // Another service name: the audience no longer matches.
  AuthConfig other_service = Config(AuthMode::kToken);
  other_service.token_service = "other-registry";
  auto other = Make(other_service);
  ASSERT_NE(other, nullptr);
  EXPECT_THAT(other->Authenticate(bearer),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("audience mismatch")));

  // Another key: the signature no longer matches.
  AuthConfig other_key = Config(AuthMode::kToken);
  other_key.token_key_path = dir_.Sub("other.key");
  auto foreign = Make(other_key);
  ASSERT_NE(foreign, nullptr);
  EXPECT_THAT(foreign->Authenticate(bearer),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("signature")));

  std::string forged = bearer;
  forged.replace(forged.size() - 4, 4, "AAAA");
  EXPECT_THAT(authorizer->Authenticate(forged), StatusIs(absl::StatusCode::kUnauthenticated));

  // Past the lifetime plus the clock skew.
  now_ += absl::Minutes(5) + kTokenClockSkew;
  EXPECT_THAT(authorizer->Authenticate(bearer),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("expired")));
}

TEST_F(AuthorizerTest, KeyFileIsPrivateAndSharedAcrossInstances) {
  auto first = Make(Config(AuthMode::kToken));
  ASSERT_NE(first, nullptr);
  struct stat st;
  ASSERT_EQ(::stat(dir_.Sub("token.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(st.st_size, static_cast<off_t>(kTokenKeySize));
  std::string bearer = BearerFor(*first, {"repository:library/busybox:pull,push"});
  first.reset();  // as across a restart

  auto second = Make(Config(AuthMode::kToken));
  ASSERT_NE(second, nullptr);
  ASSERT_OK_AND_ASSIGN(Identity identity, second->Authenticate(bearer));
  EXPECT_EQ(identity.user, "alice");
  EXPECT_OK(second->Authorize(identity, "library/busybox", Action::kPush));
}

TEST_F(AuthorizerTest, ConcurrentUse) {
  auto authorizer = Make(Config(AuthMode::kToken));
  ASSERT_NE(authorizer, nullptr);
  std::vector<std::thread> threads;
  std::vector<int> ok(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 5; ++i) {
        absl::StatusOr<TokenResponse> response =
            authorizer->IssueToken(BasicHeader("alice", "s3cret"), "pier-registry",
                                   {absl::StrCat("repository:team/r", t, ":pull")}, "");
        if (!response.ok()) continue;
        absl::StatusOr<Identity> identity =
            authorizer->Authenticate(absl::StrCat("Bearer ", response->token));
        if (identity.ok() &&
            authorizer->Authorize(*identity, absl::StrCat("team/r", t), Action::kPull).ok()) {
          ++ok[t];
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_THAT(ok, ElementsAre(5, 5, 5, 5));
}

}  // namespace
}  // namespace pier::registry::auth
