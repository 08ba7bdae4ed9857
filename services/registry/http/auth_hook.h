// Authentication and authorisation of pier-registry's HTTP front door: the
// AuthorizeFn DistributionApi calls before each request, and the Docker
// token endpoint (GET /token).
//
// Per route: GET/HEAD of blobs, manifests, tags and referrers need pull;
// uploads and manifest PUT need push (a cross-repository mount also needs
// pull on the source, else it quietly becomes a plain upload, as the spec
// allows); DELETE needs delete; _catalog needs registry:catalog:*; GET /v2/
// needs only a valid identity (anonymous passes when anonymous pull is on).
// Failures: 401 with WWW-Authenticate (Challenge) for missing or bad
// credentials and, in token mode, for a token that lacks the scope
// (error="insufficient_scope", so clients fetch a wider one); 403 DENIED in
// basic mode.
//
// Ownership: borrows the Authorizer. Thread safety: stateless.
#pragma once

#include "lib/http/server.h"
#include "services/registry/auth/authorizer.h"
#include "services/registry/http/distribution.h"

namespace pier::registry {

AuthorizeFn MakeHttpAuthorizer(const auth::Authorizer* authorizer);

// Serves GET /token?service=&scope=...&account= .
void ServeToken(const auth::Authorizer& authorizer, http::Request& req, http::ResponseWriter& w);

}  // namespace pier::registry
