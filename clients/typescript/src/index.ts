/**
 * The tunix-rt client for TypeScript/Node: the stubs generated from protos/ (src/gen/, by ts-proto
 * for @grpc/grpc-js), the connection settings the Python CLI uses ($TUNIX_RT_REGISTRY,
 * $TUNIX_RT_TRAINING, $TUNIX_RT_INFERENCE, $TUNIX_RT_AUTH_TOKEN, $TUNIX_RT_TLS_CA), a promise form
 * of unary calls, a gap-free job event stream and the google.rpc.Status details of an error.
 */

import { readFileSync } from "node:fs";

import {
  type CallOptions,
  type ChannelCredentials,
  type ClientOptions,
  credentials,
  InterceptingCall,
  type Interceptor,
  Metadata,
  type ServiceError,
  status as GrpcStatus,
} from "@grpc/grpc-js";

import { Any } from "./gen/google/protobuf/any";
import { BadRequest, ErrorInfo, ResourceInfo } from "./gen/google/rpc/error_details";
import { Status } from "./gen/google/rpc/status";
import { InferenceServiceClient } from "./gen/tunix_rt/v1/inference_service";
import { RegistryServiceClient } from "./gen/tunix_rt/v1/registry_service";
import { RunEvent } from "./gen/tunix_rt/v1/run";
import { TrainingServiceClient } from "./gen/tunix_rt/v1/training_service";

export * as inference from "./gen/tunix_rt/v1/inference";
export * as inferenceService from "./gen/tunix_rt/v1/inference_service";
export * as registryService from "./gen/tunix_rt/v1/registry_service";
export * as run from "./gen/tunix_rt/v1/run";
export * as sweep from "./gen/tunix_rt/v1/sweep";
export * as trainingJob from "./gen/tunix_rt/v1/training_job";
export * as trainingService from "./gen/tunix_rt/v1/training_service";
export { InferenceServiceClient, RegistryServiceClient, TrainingServiceClient };

/** The three services, each with its address variable and default address (as in the CLI). */
export const SERVICES = {
  registry: { env: "TUNIX_RT_REGISTRY", address: "127.0.0.1:50051" },
  training: { env: "TUNIX_RT_TRAINING", address: "127.0.0.1:50052" },
  inference: { env: "TUNIX_RT_INFERENCE", address: "127.0.0.1:50053" },
} as const;
export type ServiceName = keyof typeof SERVICES;

/** How to reach one service. */
export interface Settings {
  address: string;
  /** Sent as `authorization: Bearer <token>` on every call. */
  token?: string;
  /** PEM root certificates; setting them makes the channel use TLS. */
  tlsCa?: Buffer;
}

/** The settings of `service` from the environment, like the Python CLI's. */
export function settingsFromEnv(
  service: ServiceName,
  env: NodeJS.ProcessEnv = process.env,
): Settings {
  const { env: variable, address } = SERVICES[service];
  const ca = env.TUNIX_RT_TLS_CA;
  return {
    address: env[variable] || address,
    token: env.TUNIX_RT_AUTH_TOKEN || undefined,
    tlsCa: ca ? readFileSync(ca) : undefined,
  };
}

// The token travels in an interceptor rather than call credentials: grpc-js, like every gRPC,
// refuses call credentials on an insecure channel, and a local service may run without TLS.
function bearer(token: string): Interceptor {
  return (options, nextCall): InterceptingCall =>
    new InterceptingCall(nextCall(options), {
      start(metadata: Metadata, listener, next): void {
        metadata.set("authorization", `Bearer ${token}`);
        next(metadata, listener);
      },
    });
}

function channel(settings: Settings): [ChannelCredentials, ClientOptions] {
  const creds = settings.tlsCa ? credentials.createSsl(settings.tlsCa) : credentials.createInsecure();
  const options: ClientOptions = {
    // The services send model listings and traces in pages of up to 64 MiB, as the CLI allows.
    "grpc.max_receive_message_length": 64 * 1024 * 1024,
    interceptors: settings.token ? [bearer(settings.token)] : [],
  };
  return [creds, options];
}

/** Clients of the three services. */
export interface Clients {
  registry: RegistryServiceClient;
  training: TrainingServiceClient;
  inference: InferenceServiceClient;
  close(): void;
}

/** Clients of the three services, each from `settings` or else from the environment. */
export function connect(settings: Partial<Record<ServiceName, Settings>> = {}): Clients {
  const of = (name: ServiceName): Settings => settings[name] ?? settingsFromEnv(name);
  const registry = new RegistryServiceClient(of("registry").address, ...channel(of("registry")));
  const training = new TrainingServiceClient(of("training").address, ...channel(of("training")));
  const inference = new InferenceServiceClient(
    of("inference").address,
    ...channel(of("inference")),
  );
  return {
    registry,
    training,
    inference,
    close(): void {
      registry.close();
      training.close();
      inference.close();
    },
  };
}

type Unary<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: Partial<CallOptions>,
  callback: (error: ServiceError | null, response: Res) => void,
) => unknown;

/**
 * A unary call as a promise: `await unary(client, client.getTrainingJob, { name })`. Rejects with
 * the grpc-js ServiceError (read its details with `errorDetails`).
 */
export function unary<C extends object, Req, Res>(
  client: C,
  method: Unary<Req, Res>,
  request: Req,
  options: Partial<CallOptions> = {},
): Promise<Res> {
  return new Promise((resolve, reject) => {
    // The empty Metadata object selects the (request, metadata, options, callback) overload.
    method.call(client, request, new Metadata(), options, (error, response) =>
      error ? reject(error) : resolve(response),
    );
  });
}

/** The google.rpc.Status details of a failed call, decoded. */
export interface ErrorDetails {
  code: number;
  message: string;
  badRequest?: BadRequest;
  resourceInfo?: ResourceInfo;
  errorInfo?: ErrorInfo;
  /** Details of other types, undecoded. */
  other: Any[];
}

const DETAIL_TYPES = {
  "type.googleapis.com/google.rpc.BadRequest": "badRequest",
  "type.googleapis.com/google.rpc.ResourceInfo": "resourceInfo",
  "type.googleapis.com/google.rpc.ErrorInfo": "errorInfo",
} as const;

/**
 * The rich error model of a failed call (AIP-193): the services put a google.rpc.Status in the
 * `grpc-status-details-bin` trailer, whose details say which field was wrong (BadRequest), which
 * resource is missing or exists (ResourceInfo) and a stable reason (ErrorInfo). Undefined when the
 * error carries no such trailer.
 */
export function errorDetails(error: ServiceError): ErrorDetails | undefined {
  const [bytes] = error.metadata?.get("grpc-status-details-bin") ?? [];
  if (bytes === undefined || typeof bytes === "string") {
    return undefined;
  }
  const status = Status.decode(bytes);
  const decoded: ErrorDetails = { code: status.code, message: status.message, other: [] };
  for (const detail of status.details) {
    const field = DETAIL_TYPES[detail.typeUrl as keyof typeof DETAIL_TYPES];
    if (field === "badRequest") {
      decoded.badRequest = BadRequest.decode(detail.value);
    } else if (field === "resourceInfo") {
      decoded.resourceInfo = ResourceInfo.decode(detail.value);
    } else if (field === "errorInfo") {
      decoded.errorInfo = ErrorInfo.decode(detail.value);
    } else {
      decoded.other.push(detail);
    }
  }
  return decoded;
}

/**
 * The events of a training job from `fromSequence` as one gap-free sequence, ending after the
 * event that put the job in a terminal state. When the service ends a slow reader's stream with
 * FellBehind, the stream is reopened after the last event delivered; a skipped sequence throws.
 */
export async function* followJob(
  training: TrainingServiceClient,
  name: string,
  fromSequence: bigint = 1n,
): AsyncGenerator<RunEvent> {
  let next = fromSequence > 1n ? fromSequence : 1n;
  for (;;) {
    const stream = training.streamJobMetrics({ name, fromSequence: next, historyOnly: false });
    let behind = false;
    try {
      for await (const response of stream) {
        if (response.fellBehind !== undefined) {
          behind = true;
          break;
        }
        const event = response.runEvent;
        if (event === undefined || event.sequence < next) {
          continue; // already delivered before a reopening
        }
        if (event.sequence > next) {
          throw new Error(`${name}: event ${event.sequence} arrived when ${next} was expected`);
        }
        next += 1n;
        yield event;
      }
    } finally {
      // Ends the call when the caller stops early or on an error; a no-op after a normal end.
      stream.cancel();
    }
    if (!behind) {
      return;
    }
  }
}

/** True when `error` is a grpc-js ServiceError with `code` (for example `status.NOT_FOUND`). */
export function isGrpcError(error: unknown, code?: GrpcStatus): error is ServiceError {
  const candidate = error as Partial<ServiceError> | null;
  return (
    typeof candidate?.code === "number" &&
    candidate.metadata !== undefined &&
    (code === undefined || candidate.code === code)
  );
}

export { GrpcStatus as status };
