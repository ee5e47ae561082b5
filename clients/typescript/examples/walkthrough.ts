/**
 * A walk through the three services from Node: list traces, submit a training job and follow its
 * event stream to the end, then stream a generation from the model it registered.
 *
 *   npm run walkthrough          (from clients/typescript, with the services running)
 *
 * The addresses, token and CA come from the variables the Python CLI reads: $TUNIX_RT_REGISTRY,
 * $TUNIX_RT_TRAINING, $TUNIX_RT_INFERENCE, $TUNIX_RT_AUTH_TOKEN, $TUNIX_RT_TLS_CA. The job trains
 * the `llama3-tiny` preset on $TUNIX_RT_DATASET (default `datasets/arith`, the README's) for
 * $TUNIX_RT_STEPS steps (default 20). Every line it prints starts with what it is about.
 */

import {
  type Clients,
  connect,
  followJob,
  inference,
  inferenceService,
  run,
  trainingJob,
  trainingService,
  unary,
} from "../src/index";
import { DeviceKind } from "../src/gen/tunix_rt/v1/device";

const { RunState, runStateToJSON } = run;

async function listTraces(clients: Clients): Promise<void> {
  const { registry } = clients;
  const page = await unary(registry, registry.listTraces, { pageSize: 5, pageToken: "" });
  console.log(`traces: ${page.traces.length} listed${page.nextPageToken ? " (more pages)" : ""}`);
  for (const trace of page.traces) {
    console.log(`trace: ${trace.name} ${JSON.stringify(trace.prompt.slice(0, 60))}`);
  }
}

/** Submits the job, prints every event of its stream and returns the finished job. */
async function train(clients: Clients, dataset: string, steps: number): Promise<trainingJob.TrainingJob> {
  const { training } = clients;
  const job = trainingJob.TrainingJob.fromPartial({
    dataset,
    preset: "llama3-tiny",
    hyperparameters: {
      maxSteps: steps,
      batchSize: 4,
      maxSeqLen: 128,
      learningRate: 3e-3,
      seed: 7,
    },
    deviceRequest: { kind: DeviceKind.DEVICE_KIND_CPU, count: 1 },
  });
  const request = trainingService.CreateTrainingJobRequest.fromPartial({ trainingJob: job });
  const created = await unary(training, training.createTrainingJob, request);
  const name = created.trainingJob?.name ?? "";
  console.log(`job: ${name} submitted`);
  for await (const event of followJob(training, name)) {
    let what = "";
    if (event.stateChange) {
      const { fromState, toState } = event.stateChange;
      what = `state ${runStateToJSON(fromState)} -> ${runStateToJSON(toState)}`;
    } else if (event.metrics) {
      const values = Object.entries(event.metrics.values).map(([k, v]) => `${k}=${v.toPrecision(4)}`);
      what = `metrics ${values.join(" ")}`;
    } else if (event.log) {
      what = `log ${event.log.level} ${event.log.message}`;
    } else if (event.checkpointSaved) {
      what = "checkpoint saved";
    }
    console.log(`event: ${event.sequence} step ${event.step} ${what}`);
  }
  const done = await unary(training, training.getTrainingJob, { name });
  const finished = done.trainingJob!;
  console.log(
    `job: ${name} ${runStateToJSON(finished.state)}` +
      (finished.registeredModelVersion ? ` registered ${finished.registeredModelVersion}` : ""),
  );
  if (finished.state !== RunState.RUN_STATE_SUCCEEDED) {
    throw new Error(`${name} ended ${runStateToJSON(finished.state)}: ${finished.error?.message ?? ""}`);
  }
  return finished;
}

async function generate(clients: Clients, model: string): Promise<void> {
  const sampling = inference.SamplingParams.fromPartial({ maxNewTokens: 8 });
  const request = inferenceService.GenerateStreamRequest.fromPartial({
    model,
    prompt: "What is 2 + 3?",
    sampling,
  });
  const stream = clients.inference.generateStream(request);
  for await (const piece of stream) {
    if (piece.modelVersion) {
      console.log(`generate: ${piece.modelVersion}`);
    }
    if (piece.tokenCount > 0) {
      console.log(`token: ${piece.tokenCount} ${JSON.stringify(piece.text)}`);
    }
    if (piece.summary) {
      const tokens = piece.summary.usage?.completionTokens ?? 0;
      console.log(
        `generated: ${tokens} tokens, ${inference.finishReasonToJSON(piece.summary.finishReason)}`,
      );
    }
  }
}

async function main(): Promise<void> {
  const clients = connect();
  try {
    await listTraces(clients);
    const dataset = process.env.TUNIX_RT_DATASET || "datasets/arith";
    const steps = Number(process.env.TUNIX_RT_STEPS || "20");
    const job = await train(clients, dataset, steps);
    await generate(clients, job.registeredModelVersion);
  } finally {
    clients.close();
  }
}

main().catch((error: unknown) => {
  console.error(`walkthrough: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
});
