#include "services/runtime/server/runtime_context.h"

#include <signal.h>

#include <algorithm>
#include <cctype>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "lib/common/status.h"
#include "lib/distribution/credentials.h"
#include "lib/oci/reference.h"
#include "nlohmann/json.hpp"

namespace pier::runtime {
namespace {

// A JSON array of strings ("exec form") or else the shell form
// ["/bin/sh", "-c", text].
absl::StatusOr<std::vector<std::string>> ParseCommand(absl::string_view text) {
  std::string t(absl::StripAsciiWhitespace(text));
  if (!t.empty() && t[0] == '[') {
    nlohmann::json j = nlohmann::json::parse(t, nullptr, false);
    if (!j.is_array()) return absl::InvalidArgumentError(absl::StrCat("malformed JSON: ", t));
    std::vector<std::string> out;
    for (const auto& e : j) {
      if (!e.is_string()) return absl::InvalidArgumentError(absl::StrCat("malformed JSON: ", t));
      out.push_back(e.get<std::string>());
    }
    return out;
  }
  return std::vector<std::string>{"/bin/sh", "-c", t};
}

// "A=b C=d" or "A b" (the legacy single pair form).
absl::StatusOr<std::vector<std::pair<std::string, std::string>>> ParsePairs(
    absl::string_view text) {
  std::vector<std::pair<std::string, std::string>> out;
  std::string t(absl::StripAsciiWhitespace(text));
  size_t eq = t.find('=');
  size_t sp = t.find_first_of(" \t");
  if (eq == std::string::npos || (sp != std::string::npos && sp < eq)) {
    if (sp == std::string::npos) return absl::InvalidArgumentError("missing value");
    out.emplace_back(t.substr(0, sp), std::string(absl::StripAsciiWhitespace(t.substr(sp))));
    return out;
  }
  for (absl::string_view word : absl::StrSplit(t, absl::ByAnyChar(" \t"), absl::SkipEmpty())) {
    size_t e = word.find('=');
    if (e == absl::string_view::npos || e == 0) {
      return absl::InvalidArgumentError(absl::StrCat("expected KEY=VALUE, got \"", word, "\""));
    }
    std::string value(word.substr(e + 1));
    if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') &&
        value.back() == value.front()) {
      value = value.substr(1, value.size() - 2);
    }
    out.emplace_back(std::string(word.substr(0, e)), value);
  }
  return out;
}

void SetEnv(std::vector<std::string>* env, const std::string& key, const std::string& value) {
  std::string prefix = key + "=";
  for (std::string& e : *env) {
    if (absl::StartsWith(e, prefix)) {
      e = prefix + value;
      return;
    }
  }
  env->push_back(prefix + value);
}

}  // namespace

absl::StatusOr<distribution::RegistryClientOptions> RuntimeContext::RegistryOptionsFor(
    absl::string_view reference, const common::v1::RegistryAuth* auth) const {
  ASSIGN_OR_RETURN(oci::Reference ref, oci::Reference::Parse(reference, default_registry));
  distribution::RegistryClientOptions options;
  options.insecure = std::any_of(insecure.begin(), insecure.end(), [&](const std::string& h) {
    return distribution::SameRegistryHost(h, ref.registry);
  });
  options.ca_file = registry_ca;
  options.cert_file = registry_cert;
  options.key_file = registry_key;
  options.aliases = aliases;
  // With registry TLS settings, loopback registries are reached over https
  // too (they are the suite's own registry, serving TLS); --insecure-registry
  // hosts stay plain http.
  options.force_tls = !options.insecure && (!registry_ca.empty() || !registry_cert.empty());
  if (auth != nullptr && (auth->server_address().empty() ||
                          distribution::SameRegistryHost(auth->server_address(), ref.registry))) {
    if (!auth->username().empty() || !auth->password().empty()) {
      options.credentials = distribution::Credentials{auth->username(), auth->password()};
      return options;
    }
  }
  if (!credentials_path.empty()) {
    ASSIGN_OR_RETURN(options.credentials,
                     distribution::LoadCredentials(credentials_path, ref.registry));
  }
  return options;
}

bool RuntimeContext::ImageInUse(const std::string& image_id, bool running_only) const {
  for (const ContainerInfo& c : containers->List()) {
    if (c.image != image_id) continue;
    if (!running_only || c.state == ContainerState::kRunning ||
        c.state == ContainerState::kRestarting) {
      return true;
    }
  }
  return false;
}

absl::Status ApplyChanges(const std::vector<std::string>& changes, oci::ContainerConfig* config) {
  for (const std::string& change : changes) {
    absl::string_view line = absl::StripAsciiWhitespace(change);
    size_t sp = line.find_first_of(" \t");
    std::string op = absl::AsciiStrToUpper(line.substr(0, sp));
    std::string arg(sp == absl::string_view::npos ? ""
                                                  : absl::StripAsciiWhitespace(line.substr(sp)));
    auto bad = [&](absl::string_view why) {
      return absl::InvalidArgumentError(absl::StrCat("change \"", change, "\": ", why));
    };
    if (arg.empty()) return bad("missing argument");
    if (op == "CMD" || op == "ENTRYPOINT") {
      absl::StatusOr<std::vector<std::string>> cmd = ParseCommand(arg);
      if (!cmd.ok()) return bad(cmd.status().message());
      (op == "CMD" ? config->cmd : config->entrypoint) = *cmd;
    } else if (op == "ENV" || op == "LABEL") {
      auto pairs = ParsePairs(arg);
      if (!pairs.ok()) return bad(pairs.status().message());
      for (const auto& [k, v] : *pairs) {
        if (op == "ENV") {
          SetEnv(&config->env, k, v);
        } else {
          config->labels[k] = v;
        }
      }
    } else if (op == "EXPOSE") {
      for (absl::string_view p : absl::StrSplit(arg, ' ', absl::SkipEmpty())) {
        std::string port(p);
        if (port.find('/') == std::string::npos) port += "/tcp";
        if (std::find(config->exposed_ports.begin(), config->exposed_ports.end(), port) ==
            config->exposed_ports.end()) {
          config->exposed_ports.push_back(port);
        }
      }
      std::sort(config->exposed_ports.begin(), config->exposed_ports.end());
    } else if (op == "ONBUILD") {
      config->on_build.push_back(arg);
    } else if (op == "STOPSIGNAL") {
      if (!ParseSignal(arg).ok()) return bad("unknown signal");
      config->stop_signal = arg;
    } else if (op == "USER") {
      config->user = arg;
    } else if (op == "WORKDIR") {
      config->working_dir = arg;
    } else if (op == "VOLUME") {
      std::vector<std::string> paths;
      if (arg[0] == '[') {
        auto parsed = ParseCommand(arg);
        if (!parsed.ok()) return bad(parsed.status().message());
        paths = *parsed;
      } else {
        paths = absl::StrSplit(arg, ' ', absl::SkipEmpty());
      }
      for (const std::string& p : paths) {
        if (std::find(config->volumes.begin(), config->volumes.end(), p) == config->volumes.end()) {
          config->volumes.push_back(p);
        }
      }
      std::sort(config->volumes.begin(), config->volumes.end());
    } else {
      return bad("unsupported instruction");
    }
  }
  return absl::OkStatus();
}

void RuntimeContext::PublishEvent(Event::Type type, std::string id, std::string name,
                                  std::string action,
                                  std::map<std::string, std::string> attributes) const {
  if (events == nullptr) return;
  Event e;
  e.type = type;
  e.id = std::move(id);
  e.name = std::move(name);
  e.action = std::move(action);
  e.attributes = std::move(attributes);
  events->Publish(std::move(e));
}

absl::StatusOr<int> ParseSignal(absl::string_view text) {
  static const std::map<std::string, int> kSignals = {
      {"HUP", SIGHUP},       {"INT", SIGINT},   {"QUIT", SIGQUIT},   {"ILL", SIGILL},
      {"TRAP", SIGTRAP},     {"ABRT", SIGABRT}, {"BUS", SIGBUS},     {"FPE", SIGFPE},
      {"KILL", SIGKILL},     {"USR1", SIGUSR1}, {"SEGV", SIGSEGV},   {"USR2", SIGUSR2},
      {"PIPE", SIGPIPE},     {"ALRM", SIGALRM}, {"TERM", SIGTERM},   {"CHLD", SIGCHLD},
      {"CONT", SIGCONT},     {"STOP", SIGSTOP}, {"TSTP", SIGTSTP},   {"TTIN", SIGTTIN},
      {"TTOU", SIGTTOU},     {"URG", SIGURG},   {"XCPU", SIGXCPU},   {"XFSZ", SIGXFSZ},
      {"VTALRM", SIGVTALRM}, {"PROF", SIGPROF}, {"WINCH", SIGWINCH}, {"IO", SIGIO},
      {"PWR", SIGPWR},       {"SYS", SIGSYS}};
  int n = 0;
  if (absl::SimpleAtoi(text, &n)) {
    if (n > 0 && n < 65) return n;
  } else {
    std::string name = absl::AsciiStrToUpper(text);
    absl::string_view v(name);
    absl::ConsumePrefix(&v, "SIG");
    auto it = kSignals.find(std::string(v));
    if (it != kSignals.end()) return it->second;
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown signal \"", text, "\""));
}

void ToTimestamp(absl::Time t, google::protobuf::Timestamp* ts) {
  if (t == absl::InfinitePast() || t == absl::InfiniteFuture()) return;
  int64_t ns = absl::ToUnixNanos(t);
  ts->set_seconds(ns / 1000000000);
  ts->set_nanos(static_cast<int32_t>(ns % 1000000000));
}

absl::Time FromTimestamp(const google::protobuf::Timestamp& ts) {
  return absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
}

absl::Time ParseRfc3339(const std::string& text) {
  absl::Time t;
  std::string err;
  if (text.empty() || !absl::ParseTime(absl::RFC3339_full, text, &t, &err)) {
    return absl::InfinitePast();
  }
  return t;
}

bool RuntimeContext::VolumeInUse(const std::string& mountpoint) const {
  for (const ContainerInfo& c : containers->List()) {
    for (const exec::Mount& m : c.spec.mounts) {
      if (m.source == mountpoint) return true;
    }
  }
  return false;
}

namespace {

std::string DefaultVariant(const std::string& architecture) {
  if (architecture == "arm64") return "v8";
  if (architecture == "arm") return "v7";
  return "";
}

}  // namespace

absl::StatusOr<oci::Platform> RequestedPlatform(const common::v1::Platform& p) {
  for (const std::string* field : {&p.os(), &p.architecture(), &p.variant()}) {
    for (char c : *field) {
      if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-') {
        return absl::InvalidArgumentError(
            absl::StrCat("malformed platform \"", p.os(), "/", p.architecture(),
                         p.variant().empty() ? "" : "/", p.variant(), "\""));
      }
    }
  }
  const oci::Platform host = image::HostPlatform();
  oci::Platform out;
  out.os = p.os().empty() ? host.os : absl::AsciiStrToLower(p.os());
  out.architecture =
      p.architecture().empty() ? host.architecture : absl::AsciiStrToLower(p.architecture());
  if (out.architecture == "x86_64" || out.architecture == "x86-64") out.architecture = "amd64";
  if (out.architecture == "aarch64") out.architecture = "arm64";
  out.variant = absl::AsciiStrToLower(p.variant());
  if (p.architecture().empty() && out.variant.empty()) out.variant = host.variant;
  if (out.variant.empty()) out.variant = DefaultVariant(out.architecture);
  return out;
}

std::string PlatformText(const oci::Platform& p) {
  return absl::StrCat(p.os, "/", p.architecture, p.variant.empty() ? "" : "/", p.variant);
}

bool PlatformMatches(const oci::Platform& image, const oci::Platform& wanted) {
  if (image.os != wanted.os || image.architecture != wanted.architecture) return false;
  const std::string a = image.variant.empty() ? DefaultVariant(image.architecture) : image.variant;
  const std::string b =
      wanted.variant.empty() ? DefaultVariant(wanted.architecture) : wanted.variant;
  return image.variant.empty() || wanted.variant.empty() || a == b;
}

}  // namespace pier::runtime
