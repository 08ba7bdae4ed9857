// The OCI Distribution HTTP API (v1.1) of pier-registry: routes `/v2/...`
// requests to the storage engine and writes the spec's headers, status codes
// and error bodies. It parses and maps; every decision about content is the
// engine's (services/registry/storage/registry.h).
//
// Endpoints: GET /v2/; blobs HEAD/GET (with Range) and DELETE; uploads POST
// (session, monolithic with ?digest=, cross-repository ?mount=&from=),
// PATCH (with or without Content-Range), PUT ?digest= (with an optional final
// chunk), GET status, DELETE; manifests HEAD/GET/PUT/DELETE by tag or
// digest; tags/list and _catalog with n/last pagination and Link headers;
// referrers with artifactType filtering. Plus GET /healthz.
//
// Ownership: borrows the Registry. Thread safety: Handle is called from many
// threads at once; the handler keeps no per-request state of its own.
#pragma once

#include <functional>
#include <string>

#include "lib/http/server.h"
#include "services/registry/http/metrics.h"
#include "services/registry/storage/registry.h"

namespace pier::registry {

// What a request addresses, parsed from its path.
struct Route {
  enum Kind {
    kHealth,
    kMetrics,
    kBase,
    kCatalog,
    kTags,
    kStartUpload,
    kUpload,
    kBlob,
    kManifest,
    kReferrers
  };
  Kind kind = kBase;
  std::string repo;
  std::string leaf;  // digest, reference or upload id
};

// Parses a request path; NotFound for anything that is not an endpoint.
absl::StatusOr<Route> ParseRoute(absl::string_view path);

// Decides whether a request may proceed; a non-OK status is sent as the
// error (the hook may set headers such as WWW-Authenticate first).
using AuthorizeFn =
    std::function<absl::Status(http::Request&, http::ResponseWriter&, const Route&)>;

class DistributionApi {
 public:
  DistributionApi(Registry* registry, Metrics* metrics, AuthorizeFn authorize = nullptr)
      : registry_(registry), metrics_(metrics), authorize_(std::move(authorize)) {}

  // Blob bodies with sendfile(2) (true) or read+write through a buffer.
  void set_use_sendfile(bool use) { use_sendfile_ = use; }

  void Handle(http::Request& req, http::ResponseWriter& w);

 private:
  void Base(http::Request& req, http::ResponseWriter& w);
  void Catalog(http::Request& req, http::ResponseWriter& w);
  void Blob(http::Request& req, http::ResponseWriter& w, const std::string& repo,
            const std::string& digest);
  void StartUpload(http::Request& req, http::ResponseWriter& w, const std::string& repo);
  void Upload(http::Request& req, http::ResponseWriter& w, const std::string& repo,
              const std::string& id);
  void Manifest(http::Request& req, http::ResponseWriter& w, const std::string& repo,
                const std::string& reference);
  void Tags(http::Request& req, http::ResponseWriter& w, const std::string& repo);
  void Referrers(http::Request& req, http::ResponseWriter& w, const std::string& repo,
                 const std::string& digest);

  Registry* registry_;
  Metrics* metrics_;
  AuthorizeFn authorize_;
  bool use_sendfile_ = true;
};

// Writes an OCI error body {"errors":[{"code","message"}]} with the HTTP
// status that belongs to the status's OCI code (or its canonical code).
void SendError(http::ResponseWriter& w, const absl::Status& status);

}  // namespace pier::registry
