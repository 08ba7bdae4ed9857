// `pier events [--filter KEY=VALUE]... [--since T] [--until T] [--format json]`:
// streams pier-runtime's lifecycle events until interrupted (or until
// --until). Filters as docker's: type=container|image|volume|network|daemon,
// container=, image=, volume= (id, id prefix or name; they imply their
// type), event= (an action such as die), label=key[=value]. Times are
// RFC 3339, Unix seconds, or a duration before now ("10m").
#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>

#include <iostream>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "cli/runtime_client.h"

namespace pier::cli {
namespace {

absl::StatusOr<absl::Time> ParseEventTime(const std::string& flag, const std::string& text) {
  absl::Time t;
  std::string err;
  if (absl::ParseTime(absl::RFC3339_full, text, &t, &err)) return t;
  int64_t secs = 0;
  if (absl::SimpleAtoi(text, &secs)) return absl::FromUnixSeconds(secs);
  absl::Duration d;
  if (absl::ParseDuration(text, &d) && d >= absl::ZeroDuration()) return absl::Now() - d;
  return absl::InvalidArgumentError(absl::StrCat(
      "--", flag, " \"", text, "\": want an RFC 3339 time, Unix seconds or a duration like 10m"));
}

void SetTimestamp(absl::Time t, google::protobuf::Timestamp* ts) {
  const int64_t nanos = absl::ToUnixNanos(t);
  ts->set_seconds(nanos / 1000000000);
  ts->set_nanos(static_cast<int32_t>(nanos % 1000000000));
}

absl::Status AddFilter(const std::string& f, rt::EventsRequest* req, std::set<int>* implied_types) {
  const size_t eq = f.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == f.size()) {
    return absl::InvalidArgumentError(absl::StrCat("--filter \"", f, "\": want KEY=VALUE"));
  }
  const std::string key = f.substr(0, eq), value = f.substr(eq + 1);
  static const std::pair<const char*, rt::EventType> kTypes[] = {
      {"container", rt::EVENT_TYPE_CONTAINER},
      {"image", rt::EVENT_TYPE_IMAGE},
      {"volume", rt::EVENT_TYPE_VOLUME},
      {"network", rt::EVENT_TYPE_NETWORK},
      {"daemon", rt::EVENT_TYPE_DAEMON}};
  if (key == "type") {
    for (const auto& [name, type] : kTypes) {
      if (value == name) {
        req->add_types(type);
        return absl::OkStatus();
      }
    }
    return absl::InvalidArgumentError(absl::StrCat(
        "--filter type=", value, ": want container, image, volume, network or daemon"));
  }
  for (const auto& [name, type] : kTypes) {
    if (key == name) {
      req->add_ids(value);
      implied_types->insert(type);
      return absl::OkStatus();
    }
  }
  if (key == "event") {
    req->add_actions(value);
    return absl::OkStatus();
  }
  if (key == "label") {
    req->add_labels(value);
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--filter ", key,
                   ": unknown filter (type, container, image, volume, network, daemon, "
                   "event, label)"));
}

const char* TypeName(rt::EventType t) {
  switch (t) {
    case rt::EVENT_TYPE_CONTAINER:
      return "container";
    case rt::EVENT_TYPE_IMAGE:
      return "image";
    case rt::EVENT_TYPE_VOLUME:
      return "volume";
    case rt::EVENT_TYPE_NETWORK:
      return "network";
    case rt::EVENT_TYPE_DAEMON:
      return "daemon";
    default:
      return "unknown";
  }
}

}  // namespace

int Events(const Globals& g, const std::vector<std::string>& args) {
  std::vector<std::string> filters;
  std::string since, until, format;
  FlagSet flags("pier events", "[flags]");
  flags.StringList("filter", "f", &filters,
                   "KEY=VALUE: type, container, image, volume, event, label (repeatable)");
  flags.String("since", "", &since, "replay the kept events from this time on");
  flags.String("until", "", &until, "stop streaming at this time");
  flags.String("format", "", &format, "\"json\": one JSON object per line");
  std::vector<std::string> pos;
  if (int rc = ParseVerb(flags, args, &pos); rc >= 0) return rc;
  if (!pos.empty()) return Fail(absl::InvalidArgumentError("pier events takes no arguments"), 2);
  if (!format.empty() && format != "json") {
    return Fail(absl::InvalidArgumentError(absl::StrCat("--format ", format, ": only json")), 2);
  }
  rt::EventsRequest req;
  std::set<int> implied_types;
  for (const std::string& f : filters) {
    absl::Status s = AddFilter(f, &req, &implied_types);
    if (!s.ok()) return Fail(s, 2);
  }
  if (req.types().empty()) {
    for (int t : implied_types) req.add_types(static_cast<rt::EventType>(t));
  }
  for (const auto& [flag, text, field] :
       {std::tuple{"since", since, req.mutable_since()}, {"until", until, req.mutable_until()}}) {
    if (text.empty()) continue;
    absl::StatusOr<absl::Time> t = ParseEventTime(flag, text);
    if (!t.ok()) return Fail(t.status(), 2);
    SetTimestamp(*t, field);
  }
  if (since.empty()) req.clear_since();
  if (until.empty()) req.clear_until();

  auto stub = SystemStub(g);
  if (!stub.ok()) return Fail(stub.status());
  grpc::ClientContext ctx;
  auto reader = (*stub)->Events(&ctx, req);
  rt::EventsResponse resp;
  while (reader->Read(&resp)) {
    const rt::Event& e = resp.event();
    std::string line;
    if (format == "json") {
      google::protobuf::util::JsonPrintOptions opts;
      opts.preserve_proto_field_names = true;
      (void)google::protobuf::util::MessageToJsonString(e, &line, opts);
    } else {
      absl::Time t =
          absl::FromUnixSeconds(e.time().seconds()) + absl::Nanoseconds(e.time().nanos());
      std::vector<std::string> attrs;
      for (const auto& [k, v] :
           std::map<std::string, std::string>(e.attributes().begin(), e.attributes().end())) {
        attrs.push_back(absl::StrCat(k, "=", v));
      }
      line = absl::StrCat(absl::FormatTime("%Y-%m-%dT%H:%M:%E9SZ", t, absl::UTCTimeZone()), " ",
                          TypeName(e.type()), " ", e.action(), " ", e.id());
      if (!attrs.empty()) absl::StrAppend(&line, " (", absl::StrJoin(attrs, ", "), ")");
    }
    std::cout << line << std::endl;  // flushed per event: a pipe sees it at once
  }
  grpc::Status s = reader->Finish();
  return s.ok() ? 0 : FailRpc(s);
}

}  // namespace pier::cli
