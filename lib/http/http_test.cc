// Tests of pier_http: a real Server on 127.0.0.1:0 driven by the Client, by
// raw sockets (malformed input) and by curl (an independent client).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/common/fs.h"
#include "lib/common/status.h"
#include "lib/common/testing.h"
#include "lib/http/client.h"
#include "lib/http/headers.h"
#include "lib/http/server.h"
#include "lib/http/url.h"
#include "lib/oci/digest.h"

namespace pier::http {
namespace {

using ::pier::testing::IsOk;
using ::pier::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr size_t kMiB = 1024 * 1024;

// Deterministic pseudo-random bytes.
std::string MakeData(size_t size, uint64_t seed) {
  std::string out(size, '\0');
  uint64_t x = seed * 0x9E3779B97F4A7C15ULL + 1;
  for (size_t i = 0; i < size; i += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    std::memcpy(out.data() + i, &x, std::min<size_t>(8, size - i));
  }
  return out;
}

// Runs a shell command; returns its exit status and combined output.
int Shell(const std::string& command, std::string* output = nullptr) {
  FILE* p = ::popen((command + " 2>&1").c_str(), "r");
  if (p == nullptr) return -1;
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  int rc = ::pclose(p);
  if (output != nullptr) *output = out;
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

bool HaveCurl() { return Shell("curl --version") == 0; }

// A body source streaming `data` in pieces, counting its calls.
struct StringSource {
  const std::string* data;
  size_t offset = 0;
  int calls = 0;
  BodySource Source() {
    return [this](char* buf, size_t len) -> absl::StatusOr<size_t> {
      ++calls;
      size_t n = std::min(len, data->size() - offset);
      std::memcpy(buf, data->data() + offset, n);
      offset += n;
      return n;
    };
  }
  std::function<absl::Status()> Rewind() {
    return [this] {
      offset = 0;
      return absl::OkStatus();
    };
  }
};

// Raw TCP connection for feeding malformed input.
class RawConn {
 public:
  explicit RawConn(uint16_t port) {
    fd_.Reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    struct sockaddr_in addr {};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok_ = ::connect(fd_.get(), reinterpret_cast<struct sockaddr*>(&addr), sizeof(addr)) == 0;
  }
  bool ok() const { return ok_; }
  bool Send(absl::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::send(fd_.get(), data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }
  // Reads until the server closes (bounded, in case it never does).
  std::string ReadUntilClose() {
    std::string out;
    char buf[4096];
    for (int i = 0; i < 100000; ++i) {
      struct pollfd p {
        fd_.get(), POLLIN, 0
      };
      if (::poll(&p, 1, 30000) <= 0) break;
      ssize_t n = ::recv(fd_.get(), buf, sizeof(buf), 0);
      if (n <= 0) break;
      out.append(buf, static_cast<size_t>(n));
    }
    return out;
  }
  // Reads one response with a Content-Length body.
  std::string ReadResponse() {
    std::string out;
    char buf[4096];
    for (int i = 0; i < 100000; ++i) {
      size_t end = out.find("\r\n\r\n");
      if (end != std::string::npos) {
        size_t cl = 0;
        size_t pos = out.find("Content-Length: ");
        if (pos != std::string::npos && pos < end) {
          (void)absl::SimpleAtoi(out.substr(pos + 16, out.find("\r\n", pos) - pos - 16), &cl);
        }
        if (out.size() >= end + 4 + cl) return out;
      }
      struct pollfd p {
        fd_.get(), POLLIN, 0
      };
      if (::poll(&p, 1, 30000) <= 0) break;
      ssize_t n = ::recv(fd_.get(), buf, sizeof(buf), 0);
      if (n <= 0) break;
      out.append(buf, static_cast<size_t>(n));
    }
    return out;
  }

 private:
  UniqueFd fd_;
  bool ok_ = false;
};

// Test certificates made with the openssl CLI: a CA, a server certificate
// for 127.0.0.1/localhost and a client certificate.
struct Certs {
  std::string ca, server_cert, server_key, client_cert, client_key, other_ca;
};

absl::StatusOr<Certs> MakeCerts(const std::string& dir) {
  Certs c{dir + "/ca.crt",     dir + "/server.crt", dir + "/server.key",
          dir + "/client.crt", dir + "/client.key", dir + "/other-ca.crt"};
  RETURN_IF_ERROR(WriteFileAtomic(dir + "/server.ext",
                                  "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                                  "extendedKeyUsage=serverAuth\n"));
  RETURN_IF_ERROR(WriteFileAtomic(dir + "/client.ext", "extendedKeyUsage=clientAuth\n"));
  const std::string ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
  const std::string ca_ext =
      "-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign";
  std::vector<std::string> commands = {
      absl::StrCat("cd ", dir, " && openssl req -x509 ", ec, " -keyout ca.key -out ca.crt -days 2",
                   " -subj /CN=pier-test-ca ", ca_ext),
      absl::StrCat("cd ", dir, " && openssl req -x509 ", ec,
                   " -keyout other-ca.key -out other-ca.crt -days 2 -subj /CN=other-ca ", ca_ext),
      absl::StrCat("cd ", dir, " && openssl req ", ec,
                   " -keyout server.key -out server.csr -subj /CN=localhost"),
      absl::StrCat("cd ", dir,
                   " && openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -set_serial 2"
                   " -days 2 -extfile server.ext -out server.crt"),
      absl::StrCat("cd ", dir, " && openssl req ", ec,
                   " -keyout client.key -out client.csr -subj /CN=pier-client"),
      absl::StrCat("cd ", dir,
                   " && openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -set_serial 3"
                   " -days 2 -extfile client.ext -out client.crt"),
  };
  for (const std::string& cmd : commands) {
    std::string out;
    if (Shell(cmd, &out) != 0) {
      return absl::InternalError(absl::StrCat("`", cmd, "` failed: ", out));
    }
  }
  return c;
}

// A one-shot event (absl::Notification's mutex is invisible to ThreadSanitizer
// with Debian's uninstrumented libabsl).
class Latch {
 public:
  void Notify() {
    std::lock_guard<std::mutex> lock(mu_);
    done_ = true;
    cv_.notify_all();
  }
  bool HasBeenNotified() {
    std::lock_guard<std::mutex> lock(mu_);
    return done_;
  }
  void WaitForNotification() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return done_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
};

// The handler every test server runs, with hooks for the tests.
class Service {
 public:
  std::string file_path;  // served by /file
  Latch entered;
  Latch release;
  std::atomic<int> requests{0};

  Handler handler() {
    return [this](Request& req, ResponseWriter& w) { Handle(req, w); };
  }

 private:
  void Handle(Request& req, ResponseWriter& w) {
    ++requests;
    const std::string& p = req.path;
    if (absl::StartsWith(p, "/echo")) {
      absl::StatusOr<std::string> body = req.ReadAllBody(16 * kMiB);
      if (!body.ok()) {
        w.SetStatus(body.status().code() == absl::StatusCode::kResourceExhausted ? 413 : 400);
        (void)w.Send(body.status().ToString());
        return;
      }
      std::vector<std::string> q;
      for (const auto& [k, v] : req.query) q.push_back(absl::StrCat(k, "=", v));
      w.SetHeader("Content-Type", "text/plain");
      w.AddHeader("X-Multi", "1");
      w.AddHeader("X-Multi", "2");
      (void)w.Send(absl::StrCat(
          "method=", req.method, "\npath=", req.path, "\nquery=", absl::StrJoin(q, ","),
          "\nx-test=", req.Header("x-TEST").value_or("-"),
          "\nauthorization=", req.Header("Authorization").value_or("-"), "\nbody=", *body, "\n"));
    } else if (p == "/upload") {
      oci::Sha256 hash;
      std::vector<char> buf(kMiB);
      for (;;) {
        absl::StatusOr<size_t> n = req.ReadBody(buf.data(), buf.size());
        if (!n.ok()) {
          w.SetStatus(400);
          (void)w.Send(n.status().ToString());
          return;
        }
        if (*n == 0) break;
        hash.Update(buf.data(), *n);
      }
      uint64_t size = hash.size();
      (void)w.Send(absl::StrCat(hash.Finish().str(), " ", size, " ",
                                req.chunked ? "chunked" : "length", " ",
                                req.Header("Expect").value_or("-")));
    } else if (p == "/sink") {
      std::vector<char> buf(kMiB);
      uint64_t size = 0;
      for (;;) {
        absl::StatusOr<size_t> n = req.ReadBody(buf.data(), buf.size());
        if (!n.ok() || *n == 0) break;
        size += *n;
      }
      (void)w.Send(absl::StrCat(size));
    } else if (p == "/file") {
      UniqueFd fd(::open(file_path.c_str(), O_RDONLY | O_CLOEXEC));
      struct stat st {};
      ::fstat(fd.get(), &st);
      uint64_t offset = 0;
      if (auto o = req.Query("offset")) (void)absl::SimpleAtoi(*o, &offset);
      uint64_t length = static_cast<uint64_t>(st.st_size) - offset;
      if (auto l = req.Query("length")) (void)absl::SimpleAtoi(*l, &length);
      w.SetHeader("Content-Type", "application/octet-stream");
      absl::Status sent = w.SendFile(fd.get(), offset, length);
      if (absl::IsOutOfRange(sent) && !w.started()) {
        w.SetStatus(416);
        (void)w.Send(sent.ToString());
      }
    } else if (p == "/whoami") {
      (void)w.Send(req.remote_address);
    } else if (p == "/noreply") {
      // Returns without answering.
    } else if (p == "/throw") {
      throw std::runtime_error("boom");
    } else if (p == "/stream") {
      (void)w.Start(std::nullopt);
      for (int i = 0; i < 100; ++i) (void)w.Write(absl::StrCat("piece ", i, "\n"));
      (void)w.Finish();
    } else if (p == "/stream-known") {
      (void)w.Start(12);
      (void)w.Write("hello ");
      (void)w.Write("world!");
      (void)w.Finish();
    } else if (p == "/stream-unfinished") {
      (void)w.Start(100);
      (void)w.Write("only ten b");
    } else if (p == "/reject") {
      w.SetStatus(401);
      w.SetHeader("WWW-Authenticate", "Bearer realm=\"test\"");
      (void)w.Send("unauthorized\n");
    } else if (p == "/redirect") {
      int code = 307;
      if (auto c = req.Query("code")) (void)absl::SimpleAtoi(*c, &code);
      w.SetStatus(code);
      w.SetHeader("Location", req.Query("to").value_or(req.target));  // default: a loop
      (void)w.Send("");
    } else if (p == "/block") {
      entered.Notify();
      release.WaitForNotification();
      (void)w.Send("released");
    } else if (p == "/read-stuck") {
      entered.Notify();
      char buf[100];
      absl::StatusOr<size_t> n = req.ReadBody(buf, sizeof(buf));
      w.SetStatus(n.ok() ? 200 : 400);
      (void)w.Send("");
    } else if (p == "/nocontent") {
      w.SetStatus(204);
      (void)w.Send("");
    } else {
      w.SetStatus(404);
      (void)w.Send("not found\n");
    }
  }
};

class HttpTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new pier::testing::TempDir();
    file_data_ = new std::string(MakeData(64 * kMiB + 123, 7));
    file_path_ = new std::string(dir_->Sub("blob"));
    ASSERT_OK(WriteFileAtomic(*file_path_, *file_data_));
  }
  static void TearDownTestSuite() {
    delete file_path_;
    delete file_data_;
    delete dir_;
  }

  void SetUp() override {
    service_.file_path = *file_path_;
    ASSERT_OK_AND_ASSIGN(client_, Client::Create());
  }

  void TearDown() override {
    if (!service_.release.HasBeenNotified()) service_.release.Notify();
  }

  void StartServer(ServerOptions options = {}) {
    ASSERT_OK_AND_ASSIGN(server_, Server::Start(options, service_.handler()));
  }

  std::string Url(absl::string_view target, absl::string_view scheme = "http") const {
    return absl::StrCat(scheme, "://", server_->address(), target);
  }

  absl::StatusOr<std::pair<int, std::string>> Fetch(ClientRequest req, Client* client = nullptr) {
    ASSIGN_OR_RETURN(ClientResponse resp, (client ? client : client_.get())->Do(req));
    ASSIGN_OR_RETURN(std::string body, resp.ReadAll(256 * kMiB));
    return std::make_pair(resp.status(), body);
  }

  static std::string Digest(absl::string_view data) { return oci::Digest::Of(data).str(); }

  static pier::testing::TempDir* dir_;
  static std::string* file_data_;
  static std::string* file_path_;

  Service service_;
  std::unique_ptr<Server> server_;
  std::unique_ptr<Client> client_;
};

pier::testing::TempDir* HttpTest::dir_ = nullptr;
std::string* HttpTest::file_data_ = nullptr;
std::string* HttpTest::file_path_ = nullptr;

// ---------------------------------------------------------------------------
// URLs and headers.

TEST(UrlTest, ParsesAbsoluteUrls) {
  ASSERT_OK_AND_ASSIGN(Url u, ParseUrl("https://Registry.Example:5000/v2/?n=1#frag"));
  EXPECT_EQ(u.scheme, "https");
  EXPECT_EQ(u.host, "registry.example");
  EXPECT_EQ(u.port, 5000);
  EXPECT_EQ(u.target, "/v2/?n=1");
  EXPECT_EQ(u.Authority(), "registry.example:5000");
  ASSERT_OK_AND_ASSIGN(Url v, ParseUrl("http://[::1]"));
  EXPECT_EQ(v.host, "::1");
  EXPECT_EQ(v.port, 80);
  EXPECT_EQ(v.target, "/");
  EXPECT_EQ(v.HostPort(), "[::1]:80");
  EXPECT_EQ(v.Authority(), "[::1]");
  EXPECT_THAT(ParseUrl("ftp://x/"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseUrl("/relative"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseUrl("http://:80/"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseUrl("http://h:99999/"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseUrl("http://u:p@h/"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseUrl("http://h/a b"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseUrl("http://h/a\r\nX-Injected: 1"),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(UrlTest, ResolvesLocations) {
  ASSERT_OK_AND_ASSIGN(Url base, ParseUrl("http://r:5000/v2/lib/foo/blobs/uploads/?x=1"));
  auto resolve = [&](absl::string_view ref) {
    absl::StatusOr<Url> u = ResolveUrl(base, ref);
    return u.ok() ? u->ToString() : u.status().ToString();
  };
  EXPECT_EQ(resolve("/v2/lib/foo/blobs/uploads/abc?state=1"),
            "http://r:5000/v2/lib/foo/blobs/uploads/abc?state=1");
  EXPECT_EQ(resolve("abc"), "http://r:5000/v2/lib/foo/blobs/uploads/abc");
  EXPECT_EQ(resolve("../x"), "http://r:5000/v2/lib/foo/blobs/x");
  EXPECT_EQ(resolve("?q=2"), "http://r:5000/v2/lib/foo/blobs/uploads/?q=2");
  EXPECT_EQ(resolve("//s3.example/bucket/key?sig=1"), "http://s3.example/bucket/key?sig=1");
  EXPECT_EQ(resolve("https://s3.example/b/k"), "https://s3.example/b/k");
}

TEST(UrlTest, PercentCoding) {
  EXPECT_EQ(*PercentDecode("a%2Fb%20c+d"), "a/b c+d");
  EXPECT_EQ(*PercentDecode("a+b", /*plus_is_space=*/true), "a b");
  EXPECT_THAT(PercentDecode("bad%2"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(PercentDecode("bad%zz"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(PercentEncode("sha256:ab/c d"), "sha256%3Aab%2Fc%20d");
  EXPECT_EQ(PercentEncode("a/b", /*keep_slash=*/true), "a/b");
  ASSERT_OK_AND_ASSIGN(QueryParams q, ParseQuery("digest=sha256%3Aab&n=&flag&a=x+y"));
  EXPECT_EQ(q, (QueryParams{{"digest", "sha256:ab"}, {"n", ""}, {"flag", ""}, {"a", "x y"}}));
  EXPECT_EQ(EncodeQuery({{"mount", "sha256:ab"}, {"from", "lib/foo"}}),
            "mount=sha256%3Aab&from=lib%2Ffoo");
}

TEST(HeadersTest, CaseInsensitive) {
  Headers h{{"Content-Type", " text/plain "}, {"X-A", "1"}};
  h.Add("x-a", "2");
  EXPECT_EQ(h.Get("content-type"), "text/plain");
  EXPECT_EQ(h.GetAll("X-a"), (std::vector<absl::string_view>{"1", "2"}));
  h.Set("X-A", "3");
  EXPECT_EQ(h.GetAll("x-a"), (std::vector<absl::string_view>{"3"}));
  h.Remove("CONTENT-TYPE");
  EXPECT_FALSE(h.Has("Content-Type"));
  EXPECT_TRUE(HasToken("keep-alive, Upgrade", "upgrade"));
  EXPECT_EQ(ReasonPhrase(431), "Request Header Fields Too Large");
}

// ---------------------------------------------------------------------------
// Requests and responses.

TEST_F(HttpTest, MethodsHeadersAndQuery) {
  StartServer();
  for (const char* method : {"GET", "PUT", "PATCH", "POST", "DELETE"}) {
    SCOPED_TRACE(method);
    ClientRequest req;
    req.method = method;
    req.url = Url("/echo/a%2Fb%20c?x=1&b=x%20y&c=%2Fz&x=2&p=a+b&flag");
    req.headers.Add("X-Test", "hello");
    if (std::string(method) != "GET" && std::string(method) != "DELETE") req.body = "payload";
    ASSERT_OK_AND_ASSIGN(ClientResponse resp, client_->Do(req));
    EXPECT_EQ(resp.status(), 200);
    EXPECT_EQ(resp.Header("content-type"), "text/plain");
    EXPECT_EQ(resp.headers().GetAll("x-multi"), (std::vector<absl::string_view>{"1", "2"}));
    ASSERT_OK_AND_ASSIGN(std::string body, resp.ReadAll(kMiB));
    EXPECT_EQ(body, absl::StrCat("method=", method, "\npath=/echo/a/b c",
                                 "\nquery=x=1,b=x y,c=/z,x=2,p=a b,flag=\nx-test=hello",
                                 "\nauthorization=-\nbody=", req.body, "\n"));
  }
  // HEAD: the header of the GET, no body.
  ClientRequest get;
  get.url = Url("/echo");
  ASSERT_OK_AND_ASSIGN(auto get_result, Fetch(get));
  ClientRequest head;
  head.method = "HEAD";
  head.url = Url("/echo");
  ASSERT_OK_AND_ASSIGN(ClientResponse resp, client_->Do(head));
  EXPECT_EQ(resp.status(), 200);
  EXPECT_EQ(resp.content_length(), get_result.second.size() + 1);  // "HEAD" is one longer
  ASSERT_OK_AND_ASSIGN(std::string body, resp.ReadAll(kMiB));
  EXPECT_EQ(body, "");
  // 204 has no body; unknown paths 404.
  ClientRequest nc;
  nc.url = Url("/nocontent");
  ASSERT_OK_AND_ASSIGN(auto nc_result, Fetch(nc));
  EXPECT_EQ(nc_result.first, 204);
  nc.url = Url("/nowhere");
  ASSERT_OK_AND_ASSIGN(nc_result, Fetch(nc));
  EXPECT_EQ(nc_result.first, 404);
}

TEST_F(HttpTest, Upload64MiBWithContentLength) {
  StartServer();
  std::string data = MakeData(64 * kMiB, 1);
  StringSource src{&data};
  ClientRequest req;
  req.method = "PUT";
  req.url = Url("/upload");
  req.body_source = src.Source();
  req.content_length = data.size();
  ASSERT_OK_AND_ASSIGN(auto result, Fetch(req));
  EXPECT_EQ(result.first, 200);
  EXPECT_EQ(result.second, absl::StrCat(Digest(data), " ", data.size(), " length -"));
}

TEST_F(HttpTest, Upload64MiBChunked) {
  StartServer();
  std::string data = MakeData(64 * kMiB + 5, 2);
  StringSource src{&data};
  ClientRequest req;
  req.method = "PATCH";
  req.url = Url("/upload");
  req.body_source = src.Source();
  ASSERT_OK_AND_ASSIGN(auto result, Fetch(req));
  EXPECT_EQ(result.first, 200);
  EXPECT_EQ(result.second, absl::StrCat(Digest(data), " ", data.size(), " chunked -"));
}

TEST_F(HttpTest, BodySourceLyingAboutLengthFails) {
  StartServer();
  std::string data = "short";
  StringSource src{&data};
  ClientRequest req;
  req.method = "PUT";
  req.url = Url("/upload");
  req.body_source = src.Source();
  req.content_length = 10;
  EXPECT_THAT(client_->Do(req), StatusIs(absl::StatusCode::kInvalidArgument));
  // The client is still usable.
  ClientRequest get;
  get.url = Url("/whoami");
  EXPECT_THAT(Fetch(get), IsOk());
}

TEST_F(HttpTest, UploadsFromCurlWithExpectContinueAndChunked) {
  if (!HaveCurl()) FAIL() << "required: curl not installed";
  StartServer();
  // curl sends "Expect: 100-continue" for a large PUT and waits for it.
  std::string out;
  ASSERT_EQ(Shell(absl::StrCat("curl -sS --fail -T ", *file_path_, " ", Url("/upload")), &out), 0)
      << out;
  EXPECT_EQ(out,
            absl::StrCat(Digest(*file_data_), " ", file_data_->size(), " length 100-continue"));
  ASSERT_EQ(Shell(absl::StrCat("curl -sS --fail -H 'Transfer-Encoding: chunked' -H 'Expect:' -T ",
                               *file_path_, " ", Url("/upload")),
                  &out),
            0)
      << out;
  EXPECT_EQ(out, absl::StrCat(Digest(*file_data_), " ", file_data_->size(), " chunked -"));
}

TEST_F(HttpTest, Download64MiBWithSendFile) {
  StartServer();
  ClientRequest req;
  req.url = Url("/file");
  ASSERT_OK_AND_ASSIGN(ClientResponse resp, client_->Do(req));
  EXPECT_EQ(resp.status(), 200);
  EXPECT_EQ(resp.content_length(), file_data_->size());
  oci::Sha256 hash;
  std::vector<char> buf(kMiB);
  for (int i = 0; i < 100000; ++i) {
    ASSERT_OK_AND_ASSIGN(size_t n, resp.ReadBody(buf.data(), buf.size()));
    if (n == 0) break;
    hash.Update(buf.data(), n);
  }
  EXPECT_EQ(hash.size(), file_data_->size());
  EXPECT_EQ(hash.Finish().str(), Digest(*file_data_));

  // A range of the file.
  uint64_t offset = 12345;
  uint64_t length = 40 * kMiB + 7;
  req.url = Url(absl::StrCat("/file?offset=", offset, "&length=", length));
  ASSERT_OK_AND_ASSIGN(auto result, Fetch(req));
  EXPECT_EQ(result.first, 200);
  EXPECT_EQ(result.second.size(), length);
  EXPECT_TRUE(result.second == absl::string_view(*file_data_).substr(offset, length));

  // Beyond the end of the file: refused before anything was sent.
  req.url = Url(absl::StrCat("/file?offset=", file_data_->size() - 10, "&length=11"));
  ASSERT_OK_AND_ASSIGN(auto beyond, Fetch(req));
  EXPECT_EQ(beyond.first, 416);

  // HEAD: the length without the bytes.
  req.method = "HEAD";
  req.url = Url("/file");
  ASSERT_OK_AND_ASSIGN(ClientResponse head, client_->Do(req));
  EXPECT_EQ(head.content_length(), file_data_->size());
  ASSERT_OK_AND_ASSIGN(std::string empty, head.ReadAll(10));
  EXPECT_EQ(empty, "");

  // An independent client agrees.
  if (HaveCurl()) {
    std::string out_path = dir_->Sub("curl-download");
    std::string out;
    ASSERT_EQ(Shell(absl::StrCat("curl -sS --fail -o ", out_path, " '",
                                 Url(absl::StrCat("/file?offset=", offset)), "'"),
                    &out),
              0)
        << out;
    ASSERT_OK_AND_ASSIGN(std::string got, ReadFile(out_path));
    EXPECT_EQ(Digest(got), Digest(absl::string_view(*file_data_).substr(offset)));
  }
}

TEST_F(HttpTest, StreamedResponses) {
  StartServer();
  ClientRequest req;
  req.url = Url("/stream");
  ASSERT_OK_AND_ASSIGN(ClientResponse resp, client_->Do(req));
  EXPECT_EQ(resp.Header("Transfer-Encoding"), "chunked");
  ASSERT_OK_AND_ASSIGN(std::string body, resp.ReadAll(kMiB));
  std::string want;
  for (int i = 0; i < 100; ++i) absl::StrAppend(&want, "piece ", i, "\n");
  EXPECT_EQ(body, want);

  req.url = Url("/stream-known");
  ASSERT_OK_AND_ASSIGN(auto known, Fetch(req));
  EXPECT_EQ(known.second, "hello world!");

  // A handler that stops short of its declared length: the client sees a
  // truncated body, not a silently short one.
  req.url = Url("/stream-unfinished");
  ASSERT_OK_AND_ASSIGN(ClientResponse cut, client_->Do(req));
  EXPECT_EQ(cut.content_length(), 100u);
  EXPECT_THAT(cut.ReadAll(kMiB), StatusIs(absl::StatusCode::kUnavailable));
}

TEST_F(HttpTest, KeepAliveReusesOneConnection) {
  StartServer();
  ClientRequest req;
  req.url = Url("/whoami");
  ASSERT_OK_AND_ASSIGN(auto first, Fetch(req));
  for (int i = 0; i < 5; ++i) {
    ASSERT_OK_AND_ASSIGN(auto again, Fetch(req));
    EXPECT_EQ(again.second, first.second);  // same client port: same connection
  }
  // A PUT with a body in between keeps the connection too.
  ClientRequest put;
  put.method = "PUT";
  put.url = Url("/upload");
  put.body = MakeData(300 * 1024, 3);
  ASSERT_OK_AND_ASSIGN(auto up, Fetch(put));
  EXPECT_THAT(up.second, StartsWith(Digest(put.body)));
  ASSERT_OK_AND_ASSIGN(auto last, Fetch(req));
  EXPECT_EQ(last.second, first.second);
  EXPECT_EQ(server_->connection_count(), 1);

  if (HaveCurl()) {
    std::string out;
    ASSERT_EQ(Shell(absl::StrCat("curl -sS --fail ", req.url, " -w '\\n' ", req.url), &out), 0);
    std::vector<std::string> lines = absl::StrSplit(out, '\n');
    ASSERT_GE(lines.size(), 2u) << out;
    EXPECT_EQ(lines[0], lines[1]) << out;
  }
}

TEST_F(HttpTest, ExpectContinue) {
  StartServer();
  std::string data = MakeData(2 * kMiB, 4);
  StringSource src{&data};
  ClientRequest req;
  req.method = "PUT";
  req.url = Url("/upload");
  req.body_source = src.Source();
  req.content_length = data.size();
  req.expect_continue = true;
  ASSERT_OK_AND_ASSIGN(auto ok, Fetch(req));
  EXPECT_EQ(ok.second, absl::StrCat(Digest(data), " ", data.size(), " length 100-continue"));

  // Refused before reading: the body is never sent.
  ClientOptions patient;
  patient.expect_continue_timeout = absl::Seconds(300);
  ASSERT_OK_AND_ASSIGN(auto client, Client::Create(patient));
  StringSource unsent{&data};
  req.url = Url("/reject");
  req.body_source = unsent.Source();
  ASSERT_OK_AND_ASSIGN(auto refused, Fetch(req, client.get()));
  EXPECT_EQ(refused.first, 401);
  EXPECT_EQ(refused.second, "unauthorized\n");
  EXPECT_EQ(unsent.calls, 0);
  // And the client carries on.
  ClientRequest get;
  get.url = Url("/whoami");
  EXPECT_THAT(Fetch(get, client.get()), IsOk());
}

TEST_F(HttpTest, UnreadRequestBodyIsDrainedOrTheConnectionClosed) {
  ServerOptions options;
  options.max_drain_bytes = 256 * 1024;
  StartServer(options);
  ClientRequest req;
  req.url = Url("/whoami");
  ASSERT_OK_AND_ASSIGN(auto first, Fetch(req));
  // A small unread body is drained: same connection afterwards.
  ClientRequest put;
  put.method = "PUT";
  put.url = Url("/whoami");
  put.body = MakeData(100 * 1024, 5);
  ASSERT_OK_AND_ASSIGN(auto small, Fetch(put));
  EXPECT_EQ(small.second, first.second);
  ASSERT_OK_AND_ASSIGN(auto after_small, Fetch(req));
  EXPECT_EQ(after_small.second, first.second);
  // A large one closes the connection after the response.
  put.body = MakeData(2 * kMiB, 6);
  ASSERT_OK_AND_ASSIGN(ClientResponse big, client_->Do(put));
  EXPECT_EQ(big.status(), 200);
  EXPECT_EQ(big.Header("Connection"), "close");
  ASSERT_OK_AND_ASSIGN(std::string big_body, big.ReadAll(kMiB));
  EXPECT_EQ(big_body, first.second);
  ASSERT_OK_AND_ASSIGN(auto after_big, Fetch(req));
  EXPECT_NE(after_big.second, first.second);
}

TEST_F(HttpTest, HandlerWithoutResponseOrThrowingGives500) {
  StartServer();
  ClientRequest req;
  req.url = Url("/noreply");
  ASSERT_OK_AND_ASSIGN(auto none, Fetch(req));
  EXPECT_EQ(none.first, 500);
  req.url = Url("/throw");
  ASSERT_OK_AND_ASSIGN(auto thrown, Fetch(req));
  EXPECT_EQ(thrown.first, 500);
  req.url = Url("/whoami");
  EXPECT_THAT(Fetch(req), IsOk());
}

TEST_F(HttpTest, ManyConcurrentClients) {
  StartServer();
  constexpr int kThreads = 20;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::string data = MakeData(kMiB + t, 100 + t);
      for (int i = 0; i < 10; ++i) {
        ClientRequest req;
        if (i % 2 == 0) {
          req.url = Url(absl::StrCat("/echo?t=", t, "&i=", i));
          absl::StatusOr<std::pair<int, std::string>> r = Fetch(req);
          if (!r.ok() || r->first != 200 || !absl::StrContains(r->second, absl::StrCat("t=", t))) {
            ++failures;
          }
        } else {
          req.method = "PUT";
          req.url = Url("/upload");
          req.body = data;
          absl::StatusOr<std::pair<int, std::string>> r = Fetch(req);
          if (!r.ok() || !absl::StartsWith(r->second, Digest(data))) ++failures;
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(service_.requests.load(), kThreads * 10);
}

TEST_F(HttpTest, MaxConnectionsRefusesWith503) {
  ServerOptions options;
  options.max_connections = 1;
  StartServer(options);
  RawConn first(server_->port());
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(first.Send("GET /whoami HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_THAT(first.ReadResponse(), StartsWith("HTTP/1.1 200 OK"));
  RawConn second(server_->port());
  ASSERT_TRUE(second.ok());
  EXPECT_THAT(second.ReadUntilClose(), StartsWith("HTTP/1.1 503"));
}

// ---------------------------------------------------------------------------
// Malformed input.

TEST_F(HttpTest, MalformedRequestLineGets400AndClose) {
  StartServer();
  RawConn conn(server_->port());
  ASSERT_TRUE(conn.ok());
  ASSERT_TRUE(conn.Send("GARBAGE\r\n\r\n"));
  std::string reply = conn.ReadUntilClose();  // returns: the server closed
  EXPECT_THAT(reply, StartsWith("HTTP/1.1 400 Bad Request\r\n"));
  EXPECT_THAT(reply, HasSubstr("Connection: close\r\n"));

  RawConn bad_escape(server_->port());
  ASSERT_TRUE(bad_escape.Send("GET /a%zz HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_THAT(bad_escape.ReadUntilClose(), StartsWith("HTTP/1.1 400"));

  RawConn bad_te(server_->port());
  ASSERT_TRUE(bad_te.Send("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n"));
  EXPECT_THAT(bad_te.ReadUntilClose(), StartsWith("HTTP/1.1 501"));

  RawConn bad_chunk(server_->port());
  ASSERT_TRUE(bad_chunk.Send(
      "POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n"));
  EXPECT_THAT(bad_chunk.ReadUntilClose(), StartsWith("HTTP/1.1 400"));
}

TEST_F(HttpTest, OversizedHeaderGets431) {
  ServerOptions options;
  options.max_header_bytes = 4096;
  StartServer(options);
  RawConn conn(server_->port());
  ASSERT_TRUE(conn.ok());
  ASSERT_TRUE(conn.Send(
      absl::StrCat("GET / HTTP/1.1\r\nHost: x\r\nX-Big: ", std::string(8192, 'a'), "\r\n\r\n")));
  std::string reply = conn.ReadUntilClose();
  EXPECT_THAT(reply, StartsWith("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
}

TEST_F(HttpTest, Http10ClosesAfterResponse) {
  StartServer();
  RawConn conn(server_->port());
  ASSERT_TRUE(conn.Send("GET /stream HTTP/1.0\r\n\r\n"));
  std::string reply = conn.ReadUntilClose();
  EXPECT_THAT(reply, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(reply, ::testing::Not(HasSubstr("chunked")));
  EXPECT_THAT(reply, HasSubstr("\r\n\r\npiece 0\npiece 1\n"));
  EXPECT_THAT(reply, ::testing::EndsWith("piece 99\n"));
}

// ---------------------------------------------------------------------------
// Listening and stopping.

TEST_F(HttpTest, PortClashFailsCleanly) {
  StartServer();
  ServerOptions options;
  options.listen = server_->address();
  absl::StatusOr<std::unique_ptr<Server>> second = Server::Start(options, service_.handler());
  EXPECT_THAT(second, StatusIs(absl::StatusCode::kFailedPrecondition,
                               HasSubstr(absl::StrCat("cannot listen on ", server_->address(),
                                                      ": address in use"))));
  EXPECT_THAT(Server::Start(ServerOptions{.listen = "nonsense"}, service_.handler()),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(HttpTest, StopWithIdleClientsConnected) {
  StartServer();
  ClientRequest req;
  req.url = Url("/whoami");
  ASSERT_THAT(Fetch(req), IsOk());  // leaves a pooled keep-alive connection
  RawConn silent(server_->port());  // connected, never sends
  ASSERT_TRUE(silent.ok());
  server_->Stop();
  EXPECT_EQ(server_->connection_count(), 0);
  EXPECT_EQ(silent.ReadUntilClose(), "");
  server_->Stop();  // idempotent
}

TEST_F(HttpTest, StopCutsOffAStuckRequestAfterTheGrace) {
  ServerOptions options;
  options.shutdown_grace = absl::ZeroDuration();
  StartServer(options);
  RawConn conn(server_->port());
  ASSERT_TRUE(conn.Send("PUT /read-stuck HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"));
  service_.entered.WaitForNotification();  // the handler waits for a body that never comes
  server_->Stop();
  EXPECT_EQ(server_->connection_count(), 0);
}

TEST_F(HttpTest, StopLetsAnInFlightRequestFinish) {
  StartServer();
  ClientRequest req;
  req.url = Url("/block");
  absl::StatusOr<std::pair<int, std::string>> result;
  std::thread caller([&] { result = Fetch(req); });
  service_.entered.WaitForNotification();
  std::thread stopper([&] { server_->Stop(); });
  service_.release.Notify();
  stopper.join();
  caller.join();
  ASSERT_OK(result.status());
  EXPECT_EQ(result->second, "released");
}

TEST_F(HttpTest, ClientReconnectsAfterServerRestart) {
  StartServer();
  ClientRequest req;
  req.url = Url("/whoami");
  ASSERT_THAT(Fetch(req), IsOk());
  std::string address = server_->address();
  server_->Stop();
  server_.reset();
  ServerOptions options;
  options.listen = address;
  StartServer(options);
  EXPECT_THAT(Fetch(req), IsOk());  // the pooled connection is dead; a fresh one works
}

// ---------------------------------------------------------------------------
// Client behaviour.

TEST_F(HttpTest, ClientErrorsNameTheUrl) {
  // A port nobody listens on.
  UniqueFd probe(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  struct sockaddr_in addr {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(probe.get(), reinterpret_cast<struct sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t len = sizeof(addr);
  ::getsockname(probe.get(), reinterpret_cast<struct sockaddr*>(&addr), &len);
  std::string url = absl::StrCat("http://127.0.0.1:", ntohs(addr.sin_port), "/v2/");
  probe.Reset();
  ClientRequest req;
  req.url = url;
  EXPECT_THAT(client_->Do(req), StatusIs(absl::StatusCode::kUnavailable, HasSubstr(url)));
  req.url = "gopher://x/";
  EXPECT_THAT(client_->Do(req), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(HttpTest, ClientTimesOut) {
  StartServer();
  ClientOptions options;
  options.io_timeout = absl::Milliseconds(100);
  ASSERT_OK_AND_ASSIGN(auto client, Client::Create(options));
  ClientRequest req;
  req.url = Url("/block");  // answers only when the test says so
  EXPECT_THAT(client->Do(req), StatusIs(absl::StatusCode::kDeadlineExceeded, HasSubstr(req.url)));
  service_.release.Notify();
}

TEST_F(HttpTest, FollowsRedirects) {
  StartServer();
  // 307 keeps method and body.
  ClientRequest req;
  req.method = "PUT";
  req.url = Url("/redirect?code=307&to=/echo/moved");
  req.body = "body";
  req.headers.Add("Authorization", "Bearer secret");
  ASSERT_OK_AND_ASSIGN(ClientResponse resp, client_->Do(req));
  EXPECT_EQ(resp.url(), Url("/echo/moved"));
  ASSERT_OK_AND_ASSIGN(std::string body, resp.ReadAll(kMiB));
  EXPECT_THAT(body, HasSubstr("method=PUT\npath=/echo/moved\n"));
  EXPECT_THAT(body, HasSubstr("authorization=Bearer secret\nbody=body\n"));
  // 303 turns into a GET without body.
  req.method = "POST";
  req.url = Url("/redirect?code=303&to=/echo");
  ASSERT_OK_AND_ASSIGN(auto see_other, Fetch(req));
  EXPECT_THAT(see_other.second, HasSubstr("method=GET\n"));
  EXPECT_THAT(see_other.second, HasSubstr("body=\n"));
  // To another host: Authorization is not forwarded.
  Service other_service;
  ASSERT_OK_AND_ASSIGN(auto other, Server::Start({}, other_service.handler()));
  std::string elsewhere = absl::StrCat("http://localhost:", other->port(), "/echo");
  req.method = "GET";
  req.body.clear();
  req.url = Url(absl::StrCat("/redirect?code=302&to=", PercentEncode(elsewhere)));
  ASSERT_OK_AND_ASSIGN(auto cross, Fetch(req));
  EXPECT_THAT(cross.second, HasSubstr("authorization=-\n"));
  // A streamed body that cannot be rewound is not re-sent: the 307 comes back.
  std::string data = "streamed";
  StringSource src{&data};
  req.method = "PUT";
  req.url = Url("/redirect?code=307&to=/upload");
  req.body_source = src.Source();
  req.content_length = data.size();
  ASSERT_OK_AND_ASSIGN(auto unfollowed, Fetch(req));
  EXPECT_EQ(unfollowed.first, 307);
  // With a rewind it is.
  src.offset = 0;
  req.rewind_body = src.Rewind();
  ASSERT_OK_AND_ASSIGN(auto followed, Fetch(req));
  EXPECT_EQ(followed.second, absl::StrCat(Digest(data), " ", data.size(), " length -"));
  // Loops stop.
  ClientRequest loop;
  loop.url = Url("/redirect?code=302");
  EXPECT_THAT(client_->Do(loop), StatusIs(absl::StatusCode::kFailedPrecondition));
  // Or are not followed at all.
  loop.follow_redirects = false;
  ASSERT_OK_AND_ASSIGN(auto raw, Fetch(loop));
  EXPECT_EQ(raw.first, 302);
}

// ---------------------------------------------------------------------------
// TLS.

class HttpsTest : public HttpTest {
 protected:
  static void SetUpTestSuite() {
    HttpTest::SetUpTestSuite();
    cert_dir_ = new pier::testing::TempDir();
    absl::StatusOr<Certs> certs = MakeCerts(cert_dir_->path());
    ASSERT_OK(certs.status());
    certs_ = new Certs(*certs);
  }
  static void TearDownTestSuite() {
    delete certs_;
    delete cert_dir_;
    HttpTest::TearDownTestSuite();
  }

  ServerOptions TlsOptions() const {
    ServerOptions options;
    options.tls_cert_file = certs_->server_cert;
    options.tls_key_file = certs_->server_key;
    return options;
  }

  static pier::testing::TempDir* cert_dir_;
  static Certs* certs_;
};

pier::testing::TempDir* HttpsTest::cert_dir_ = nullptr;
Certs* HttpsTest::certs_ = nullptr;

TEST_F(HttpsTest, ServesTlsToAVerifyingClient) {
  StartServer(TlsOptions());
  ClientOptions options;
  options.ca_file = certs_->ca;
  ASSERT_OK_AND_ASSIGN(auto client, Client::Create(options));
  ClientRequest req;
  req.url = Url("/echo?x=1", "https");
  ASSERT_OK_AND_ASSIGN(auto echo, Fetch(req, client.get()));
  EXPECT_THAT(echo.second, HasSubstr("method=GET\npath=/echo\nquery=x=1\n"));

  // Upload and download a few MiB through TLS (download falls back from
  // sendfile to read+write).
  std::string data = MakeData(8 * kMiB + 1, 9);
  StringSource src{&data};
  ClientRequest put;
  put.method = "PUT";
  put.url = Url("/upload", "https");
  put.body_source = src.Source();
  ASSERT_OK_AND_ASSIGN(auto up, Fetch(put, client.get()));
  EXPECT_EQ(up.second, absl::StrCat(Digest(data), " ", data.size(), " chunked -"));
  req.url = Url("/file?length=9000001", "https");
  ASSERT_OK_AND_ASSIGN(auto down, Fetch(req, client.get()));
  EXPECT_EQ(Digest(down.second), Digest(absl::string_view(*file_data_).substr(0, 9000001)));

  req.url = Url("/stream", "https");
  ASSERT_OK_AND_ASSIGN(auto streamed, Fetch(req, client.get()));
  EXPECT_THAT(streamed.second, StartsWith("piece 0\npiece 1\n"));
  EXPECT_THAT(streamed.second, ::testing::EndsWith("piece 99\n"));

  // "localhost" is in the certificate too.
  req.url = absl::StrCat("https://localhost:", server_->port(), "/whoami");
  EXPECT_THAT(Fetch(req, client.get()), IsOk());

  if (HaveCurl()) {
    std::string out;
    EXPECT_EQ(Shell(absl::StrCat("curl -sS --fail --cacert ", certs_->ca, " ",
                                 Url("/echo?via=curl", "https")),
                    &out),
              0)
        << out;
    EXPECT_THAT(out, HasSubstr("query=via=curl"));
  }
}

TEST_F(HttpsTest, ClientRefusesAnUntrustedServerUnlessTold) {
  StartServer(TlsOptions());
  ClientRequest req;
  req.url = Url("/whoami", "https");
  // client_ trusts only the system CAs.
  EXPECT_THAT(client_->Do(req),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("certificate verify failed")));
  ClientOptions other_ca;
  other_ca.ca_file = certs_->other_ca;
  ASSERT_OK_AND_ASSIGN(auto wrong, Client::Create(other_ca));
  EXPECT_THAT(wrong->Do(req), StatusIs(absl::StatusCode::kUnavailable));
  ClientOptions insecure;
  insecure.tls_verify = false;
  ASSERT_OK_AND_ASSIGN(auto client, Client::Create(insecure));
  EXPECT_THAT(Fetch(req, client.get()), IsOk());
  // Plain HTTP to a TLS port fails cleanly too.
  req.url = Url("/whoami", "http");
  EXPECT_THAT(client_->Do(req), StatusIs(absl::StatusCode::kUnavailable));
}

TEST_F(HttpsTest, MutualTls) {
  ServerOptions options = TlsOptions();
  options.tls_client_ca_file = certs_->ca;
  StartServer(options);
  ClientRequest req;
  req.url = Url("/whoami", "https");

  ClientOptions anonymous;
  anonymous.ca_file = certs_->ca;
  ASSERT_OK_AND_ASSIGN(auto no_cert, Client::Create(anonymous));
  EXPECT_THAT(no_cert->Do(req), StatusIs(absl::StatusCode::kUnavailable));

  ClientOptions with_cert = anonymous;
  with_cert.cert_file = certs_->client_cert;
  with_cert.key_file = certs_->client_key;
  ASSERT_OK_AND_ASSIGN(auto client, Client::Create(with_cert));
  ASSERT_OK_AND_ASSIGN(auto ok, Fetch(req, client.get()));
  EXPECT_EQ(ok.first, 200);

  if (HaveCurl()) {
    std::string out;
    EXPECT_NE(Shell(absl::StrCat("curl -sS --fail --cacert ", certs_->ca, " ", req.url), &out), 0);
    EXPECT_EQ(Shell(absl::StrCat("curl -sS --fail --cacert ", certs_->ca, " --cert ",
                                 certs_->client_cert, " --key ", certs_->client_key, " ", req.url),
                    &out),
              0)
        << out;
  }
}

TEST_F(HttpsTest, BadTlsFilesFailAtStart) {
  ServerOptions options = TlsOptions();
  options.tls_key_file = cert_dir_->Sub("missing.key");
  EXPECT_THAT(Server::Start(options, service_.handler()), StatusIs(absl::StatusCode::kNotFound));
  options = TlsOptions();
  options.tls_key_file = certs_->client_key;  // does not match the certificate
  EXPECT_THAT(Server::Start(options, service_.handler()),
              StatusIs(absl::StatusCode::kInvalidArgument));
  ClientOptions client_options;
  client_options.ca_file = cert_dir_->Sub("missing.crt");
  EXPECT_THAT(Client::Create(client_options), StatusIs(absl::StatusCode::kNotFound));
}

// ---------------------------------------------------------------------------
// Throughput, run by hand:
//   build/tests/http_test --gtest_also_run_disabled_tests --gtest_filter='*Throughput*'

TEST_F(HttpTest, DISABLED_Throughput256MiB) {
  StartServer();
  std::string big_path = dir_->Sub("big");
  std::string data = MakeData(256 * kMiB, 11);
  ASSERT_OK(WriteFileAtomic(big_path, data));
  service_.file_path = big_path;
  auto rate = [](uint64_t bytes, absl::Duration d) {
    return static_cast<double>(bytes) / kMiB / absl::ToDoubleSeconds(d);
  };
  for (int round = 0; round < 3; ++round) {
    ClientRequest get;
    get.url = Url("/file");
    absl::Time t0 = absl::Now();
    ASSERT_OK_AND_ASSIGN(ClientResponse resp, client_->Do(get));
    std::vector<char> buf(kMiB);
    uint64_t got = 0;
    for (;;) {
      ASSERT_OK_AND_ASSIGN(size_t n, resp.ReadBody(buf.data(), buf.size()));
      if (n == 0) break;
      got += n;
    }
    absl::Duration get_time = absl::Now() - t0;
    ASSERT_EQ(got, data.size());

    StringSource src{&data};
    ClientRequest put;
    put.method = "PUT";
    put.url = Url("/sink");
    put.body_source = src.Source();
    put.content_length = data.size();
    t0 = absl::Now();
    ASSERT_OK_AND_ASSIGN(auto up, Fetch(put));
    absl::Duration put_time = absl::Now() - t0;
    ASSERT_EQ(up.second, absl::StrCat(data.size()));
    std::printf("pier client: GET %.0f MiB/s, PUT %.0f MiB/s\n", rate(got, get_time),
                rate(data.size(), put_time));
  }
  // Small requests on one keep-alive connection: latency and server CPU.
  ClientRequest small;
  small.url = Url("/whoami");
  constexpr int kSmall = 20000;
  struct timespec cpu0 {};
  struct timespec cpu1 {};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu0);
  absl::Time t0 = absl::Now();
  for (int i = 0; i < kSmall; ++i) ASSERT_THAT(Fetch(small), IsOk());
  absl::Duration wall = absl::Now() - t0;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu1);
  double cpu_us =
      ((cpu1.tv_sec - cpu0.tv_sec) * 1e6 + (cpu1.tv_nsec - cpu0.tv_nsec) / 1e3) / kSmall;
  std::printf("small GETs: %.1f us/request wall, %.1f us CPU/request (client + server)\n",
              absl::ToDoubleMicroseconds(wall) / kSmall, cpu_us);
  if (HaveCurl()) {
    for (int round = 0; round < 3; ++round) {
      std::string get;
      std::string put;
      Shell(absl::StrCat("curl -sS -o /dev/null -w '%{speed_download}' ", Url("/file")), &get);
      Shell(absl::StrCat("curl -sS -o /dev/null -w '%{speed_upload}' -T ", big_path, " ",
                         Url("/sink")),
            &put);
      double g = 0;
      double p = 0;
      (void)absl::SimpleAtod(get, &g);
      (void)absl::SimpleAtod(put, &p);
      std::printf("curl: GET %.0f MiB/s, PUT %.0f MiB/s\n", g / kMiB, p / kMiB);
    }
  }
}

}  // namespace
}  // namespace pier::http
