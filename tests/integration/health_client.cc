#include "tests/integration/health_client.h"

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <chrono>

#include "grpc/health/v1/health.grpc.pb.h"
#include "lib/common/status.h"
#include "lib/rpc/status.h"

namespace pier::testing {

absl::StatusOr<std::string> CheckHealth(const std::string& address, const rpc::TlsFiles& tls,
                                        const std::string& service) {
  ASSIGN_OR_RETURN(std::shared_ptr<grpc::Channel> channel, rpc::MakeChannel(address, tls));
  auto stub = grpc::health::v1::Health::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::health::v1::HealthCheckRequest req;
  req.set_service(service);
  grpc::health::v1::HealthCheckResponse resp;
  grpc::Status s = stub->Check(&ctx, req, &resp);
  if (!s.ok()) return rpc::FromGrpcStatus(s);
  return grpc::health::v1::HealthCheckResponse::ServingStatus_Name(resp.status());
}

absl::StatusOr<std::string> ReflectionListServices(const std::string& address) {
  ASSIGN_OR_RETURN(std::shared_ptr<grpc::Channel> channel, rpc::MakeChannel(address));
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::CompletionQueue cq;
  auto call =
      stub.PrepareCall(&ctx, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &cq);
  void* tag = nullptr;
  bool ok = false;
  auto next = [&](intptr_t want) -> absl::Status {
    if (!cq.Next(&tag, &ok) || reinterpret_cast<intptr_t>(tag) != want || !ok) {
      return absl::UnavailableError("reflection call failed");
    }
    return absl::OkStatus();
  };
  call->StartCall(reinterpret_cast<void*>(1));
  RETURN_IF_ERROR(next(1));
  // ServerReflectionRequest{list_services: ""}: field 7, length-delimited, empty.
  const char request[] = {0x3a, 0x00};
  grpc::Slice slice(request, sizeof(request));
  grpc::ByteBuffer out(&slice, 1);
  call->Write(out, reinterpret_cast<void*>(2));
  RETURN_IF_ERROR(next(2));
  grpc::ByteBuffer in;
  call->Read(&in, reinterpret_cast<void*>(3));
  RETURN_IF_ERROR(next(3));
  call->WritesDone(reinterpret_cast<void*>(4));
  RETURN_IF_ERROR(next(4));
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(5));
  RETURN_IF_ERROR(next(5));
  std::vector<grpc::Slice> slices;
  if (!in.Dump(&slices).ok()) return absl::InternalError("cannot read reflection response");
  std::string raw;
  for (const grpc::Slice& s : slices)
    raw.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return raw;
}

}  // namespace pier::testing
