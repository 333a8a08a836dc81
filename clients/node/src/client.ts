/**
 * A small helper around the generated grpc-js stub of designsearch.v1.GatewayService:
 * a channel with the API key in the `x-api-key` metadata of every call, optional TLS,
 * and promise wrappers for the calls a CAD plugin needs most.
 */
import { readFileSync } from "node:fs";
import {
  credentials,
  InterceptingCall,
  type Interceptor,
  Metadata,
  type ServiceError,
  status,
} from "@grpc/grpc-js";
import {
  FindSimilarRequest,
  type FindSimilarResponse,
  GatewayServiceClient,
} from "./generated/designsearch/v1/gateway";
import { Status } from "./generated/google/rpc/status";

export interface ConnectOptions {
  /** Sent as `x-api-key` on every call (default: $DESIGNSEARCH_API_KEY; none when empty). */
  apiKey?: string;
  /** PEM CA bundle to verify a TLS gateway with (default: the file named by $DESIGNSEARCH_TLS_CA; else plaintext). */
  tlsCa?: Buffer;
}

const MAX_MESSAGE = 64 * 1024 * 1024;

/** An interceptor that adds `x-api-key: apiKey` to the metadata of each call. */
export function apiKeyInterceptor(apiKey: string): Interceptor {
  return (options, nextCall) =>
    new InterceptingCall(nextCall(options), {
      start(metadata, listener, next) {
        metadata.set("x-api-key", apiKey);
        next(metadata, listener);
      },
    });
}

/** A GatewayService client for `address` (`host:port`). Close it with `client.close()`. */
export function connect(address: string, options: ConnectOptions = {}): GatewayServiceClient {
  const apiKey = options.apiKey ?? process.env.DESIGNSEARCH_API_KEY ?? "";
  let tlsCa = options.tlsCa;
  if (tlsCa === undefined && process.env.DESIGNSEARCH_TLS_CA) {
    tlsCa = readFileSync(process.env.DESIGNSEARCH_TLS_CA);
  }
  const creds = tlsCa !== undefined ? credentials.createSsl(tlsCa) : credentials.createInsecure();
  return new GatewayServiceClient(address, creds, {
    interceptors: apiKey ? [apiKeyInterceptor(apiKey)] : [],
    "grpc.max_receive_message_length": MAX_MESSAGE,
    "grpc.max_send_message_length": MAX_MESSAGE,
  });
}

/** FindSimilar as a promise; `k` 0 = the server default (6). Rejects with a grpc-js ServiceError. */
export function findSimilar(
  client: GatewayServiceClient,
  image: Buffer,
  k = 0,
  timeoutS = 30,
): Promise<FindSimilarResponse> {
  const request = FindSimilarRequest.fromPartial({ image: { content: image }, k });
  return new Promise((resolve, reject) => {
    client.findSimilar(request, new Metadata(), { deadline: Date.now() + timeoutS * 1000 }, (err, response) =>
      err ? reject(err) : resolve(response),
    );
  });
}

/** Whether `err` is a failed gRPC call (a grpc-js ServiceError). */
export function isServiceError(err: unknown): err is ServiceError {
  return typeof err === "object" && err !== null && "code" in err && "details" in err && "metadata" in err;
}

/**
 * `CODE: message` of a failed call (e.g. `INVALID_ARGUMENT: image: not a decodable image`), followed by
 * the type names of the google.rpc.Status details the server attached (e.g. `[google.rpc.ErrorInfo]`).
 */
export function describeError(err: ServiceError): string {
  let text = `${status[err.code] ?? err.code}: ${err.details}`;
  const raw = err.metadata?.get("grpc-status-details-bin")?.[0];
  if (raw instanceof Buffer) {
    try {
      const types = Status.decode(raw).details.map((d) => d.typeUrl.split("/").pop());
      if (types.length) text += ` [${types.join(", ")}]`;
    } catch {
      // undecodable details: the code and message are enough
    }
  }
  return text;
}
