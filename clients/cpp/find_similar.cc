// find_similar: the most similar catalogue designs to one image, over the designsearch public API.
//
// The example a CAD-plugin author copies: one blocking FindSimilar call on a gRPC channel, with a
// deadline, the API key in the `x-api-key` metadata, and the error handling a plugin needs.
//
//   find_similar --gateway HOST:PORT [--api-key KEY] [--k 6] [--timeout 30] [--tls-ca PEM] IMAGE_FILE
//
// The API key may also come from $DESIGNSEARCH_API_KEY, the CA bundle from $DESIGNSEARCH_TLS_CA (as for
// the Python client; without one the channel is plaintext, for loopback and tests).
//
// Output: lines starting with '#' are comments (header, footer); every match is one line
//   <rank>\t<design_id>\t<brand>\t<model>\t<year>\t<score, 4 decimals>
// Exit status: 0 = success, 1 = the call failed (status code name and message on stderr),
// 2 = bad usage or unreadable file.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <sstream>
#include <string>

#include <grpcpp/grpcpp.h>

#include "designsearch/v1/gateway.grpc.pb.h"

namespace {

namespace v1 = designsearch::v1;

constexpr int kMaxMessageBytes = 64 * 1024 * 1024;  // replies carry JPEG thumbnails

const char* StatusCodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK: return "OK";
    case grpc::StatusCode::CANCELLED: return "CANCELLED";
    case grpc::StatusCode::UNKNOWN: return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND: return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS: return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED: return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION: return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED: return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE: return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED: return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL: return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE: return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS: return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED: return "UNAUTHENTICATED";
    default: return "UNKNOWN";
  }
}

// Tabs and line breaks in a label would break the one-line-per-match format.
std::string Field(const std::string& s) {
  std::string out = s;
  for (char& c : out) {
    if (c == '\t' || c == '\n' || c == '\r') c = ' ';
  }
  return out;
}

bool ReadFile(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  try {  // reading a directory throws
    out->assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  } catch (const std::exception&) {
    return false;
  }
  return !in.bad();
}

int Usage(const char* argv0, const std::string& error) {
  if (!error.empty()) std::cerr << argv0 << ": " << error << "\n";
  std::cerr << "usage: " << argv0
            << " --gateway HOST:PORT [--api-key KEY] [--k 6] [--timeout SECONDS] [--tls-ca PEM_FILE]"
               " IMAGE_FILE\n"
               "  --api-key   sent as gRPC metadata x-api-key (default: $DESIGNSEARCH_API_KEY)\n"
               "  --k         number of designs, 1..100 (default 6)\n"
               "  --timeout   deadline of the call in seconds (default 30)\n"
               "  --tls-ca    PEM CA bundle, for TLS to the gateway\n"
               "              (default: $DESIGNSEARCH_TLS_CA; none = plaintext)\n";
  return 2;
}

bool ParseInt(const std::string& s, int* out) {
  try {
    size_t used = 0;
    int v = std::stoi(s, &used);
    if (used != s.size()) return false;
    *out = v;
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

bool ParseDouble(const std::string& s, double* out) {
  try {
    size_t used = 0;
    double v = std::stod(s, &used);
    if (used != s.size() || !(v > 0)) return false;
    *out = v;
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string gateway, image_path, tls_ca_path;
  std::string api_key = std::getenv("DESIGNSEARCH_API_KEY") ? std::getenv("DESIGNSEARCH_API_KEY") : "";
  if (std::getenv("DESIGNSEARCH_TLS_CA")) tls_ca_path = std::getenv("DESIGNSEARCH_TLS_CA");
  int k = 6;
  double timeout_s = 30.0;

  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&](std::string* out) {
      if (i + 1 >= argc) return false;
      *out = argv[++i];
      return true;
    };
    std::string v;
    if (arg == "-h" || arg == "--help") {
      Usage(argv[0], "");
      return 0;
    } else if (arg == "--gateway") {
      if (!value(&gateway)) return Usage(argv[0], "--gateway needs HOST:PORT");
    } else if (arg == "--api-key") {
      if (!value(&api_key)) return Usage(argv[0], "--api-key needs a value");
    } else if (arg == "--tls-ca") {
      if (!value(&tls_ca_path)) return Usage(argv[0], "--tls-ca needs a file");
    } else if (arg == "--k") {
      if (!value(&v) || !ParseInt(v, &k)) return Usage(argv[0], "--k needs an integer");
    } else if (arg == "--timeout") {
      if (!value(&v) || !ParseDouble(v, &timeout_s)) {
        return Usage(argv[0], "--timeout needs a positive number");
      }
    } else if (arg.size() > 1 && arg[0] == '-') {
      return Usage(argv[0], "unknown option " + arg);
    } else if (image_path.empty()) {
      image_path = arg;
    } else {
      return Usage(argv[0], "only one IMAGE_FILE");
    }
  }
  if (gateway.empty()) return Usage(argv[0], "--gateway is required");
  if (image_path.empty()) return Usage(argv[0], "IMAGE_FILE is required");

  std::string image;
  if (!ReadFile(image_path, &image)) {
    std::cerr << argv[0] << ": cannot read " << image_path << "\n";
    return 2;
  }

  // One channel per process; a plugin keeps it (and the stub) for its lifetime: channels are costly
  // to create and reconnect by themselves.
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  if (!tls_ca_path.empty()) {
    grpc::SslCredentialsOptions ssl;
    if (!ReadFile(tls_ca_path, &ssl.pem_root_certs)) {
      std::cerr << argv[0] << ": cannot read CA bundle " << tls_ca_path << "\n";
      return 2;
    }
    credentials = grpc::SslCredentials(ssl);
  }
  grpc::ChannelArguments channel_args;
  channel_args.SetMaxReceiveMessageSize(kMaxMessageBytes);
  channel_args.SetMaxSendMessageSize(kMaxMessageBytes);
  auto channel = grpc::CreateCustomChannel(gateway, credentials, channel_args);
  auto stub = v1::GatewayService::NewStub(channel);

  v1::FindSimilarRequest request;
  request.mutable_image()->set_content(std::move(image));
  request.mutable_image()->set_source(image_path);
  request.set_k(k);

  grpc::ClientContext context;  // one per call
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::milliseconds(static_cast<long long>(timeout_s * 1000)));
  if (!api_key.empty()) context.AddMetadata("x-api-key", api_key);

  v1::FindSimilarResponse response;
  const grpc::Status status = stub->FindSimilar(&context, request, &response);
  if (!status.ok()) {
    std::cerr << "FindSimilar failed: " << StatusCodeName(status.error_code()) << ": "
              << status.error_message() << "\n";
    return 1;
  }

  double total_ms = 0;
  auto t = response.timings_ms().find("total");
  if (t != response.timings_ms().end()) total_ms = t->second;
  std::printf("# %d matches for %s (embedder %s, %s, %.1f ms%s)\n", response.matches_size(),
              image_path.c_str(), response.embedder_version().c_str(),
              v1::Domain_Name(response.domain()).c_str(), total_ms,
              response.cache_hit() ? ", cached" : "");
  std::printf("# rank\tdesign_id\tbrand\tmodel\tyear\tscore\n");
  int rank = 0;
  for (const v1::Match& m : response.matches()) {
    const v1::DesignRecord& d = m.design();
    std::printf("%d\t%s\t%s\t%s\t%d\t%.4f\n", ++rank, Field(d.design_id()).c_str(), Field(d.brand()).c_str(),
                Field(d.model()).c_str(), d.year(), static_cast<double>(m.score()));
  }
  std::printf("# query id (for Dislike): %s\n", response.query_id().c_str());
  return 0;
}
