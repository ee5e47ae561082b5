/**
 * Tests of the TypeScript client against running services (`node --test`), with the addresses,
 * token and CA in the environment as for the CLI: tests/client/test_typescript_client.py starts the
 * real three services with a token and TLS, imports traces, and runs these and the walkthrough.
 * Each decoded error detail is also printed, for that test to read.
 */

import assert from "node:assert/strict";
import { after, test } from "node:test";

import {
  connect,
  errorDetails,
  isGrpcError,
  registryService,
  settingsFromEnv,
  status,
  sweep,
  trainingJob,
  trainingService,
  unary,
} from "../src/index";

const clients = connect();
after(() => clients.close());

test("settings come from the CLI's variables", () => {
  const settings = settingsFromEnv("training", { TUNIX_RT_TRAINING: "example:1" });
  assert.deepEqual(settings, { address: "example:1", token: undefined, tlsCa: undefined });
  assert.equal(settingsFromEnv("inference", {}).address, "127.0.0.1:50053");
});

test("traces are listed", async () => {
  const { registry } = clients;
  const request = registryService.ListTracesRequest.fromPartial({ pageSize: 3 });
  const page = await unary(registry, registry.listTraces, request);
  assert.equal(page.traces.length, 3);
  assert.match(page.traces[0].name, /^traces\//);
  console.log(`listed: ${page.traces.map((t) => t.name).join(" ")}`);
});

test("NOT_FOUND carries a ResourceInfo", async () => {
  const { training } = clients;
  const name = "trainingJobs/no-such-job";
  const error = await unary(training, training.getTrainingJob, { name }).then(
    () => assert.fail("a missing job was found"),
    (e: unknown) => e,
  );
  assert.ok(isGrpcError(error, status.NOT_FOUND), String(error));
  const details = errorDetails(error);
  assert.equal(details?.code, status.NOT_FOUND);
  assert.equal(details?.resourceInfo?.resourceName, name);
  console.log(
    `error: NOT_FOUND ResourceInfo ${details?.resourceInfo?.resourceType} ` +
      `${details?.resourceInfo?.resourceName} reason ${details?.errorInfo?.reason ?? "-"}`,
  );
});

test("INVALID_ARGUMENT carries a BadRequest naming the field", async () => {
  const { training } = clients;
  // No dataset, checked only (validate_only): the service names the missing field.
  const request = trainingService.CreateTrainingJobRequest.fromPartial({
    trainingJob: trainingJob.TrainingJob.fromPartial({ preset: "llama3-tiny" }),
    validateOnly: true,
  });
  const error = await unary(training, training.createTrainingJob, request).then(
    () => assert.fail("a job without a dataset was accepted"),
    (e: unknown) => e,
  );
  assert.ok(isGrpcError(error, status.INVALID_ARGUMENT), String(error));
  const violations = errorDetails(error)?.badRequest?.fieldViolations ?? [];
  assert.ok(violations.length > 0, "no field violations");
  const fields = violations.map((v) => v.field).join(" ");
  console.log(`error: INVALID_ARGUMENT BadRequest ${fields}`);
});

test("a sweep with no parameters is INVALID_ARGUMENT naming its search space", async () => {
  const { training } = clients;
  // Sweeps are called through the generated stub like any RPC; validate_only creates nothing.
  const minimize = sweep.SweepObjectiveDirection.SWEEP_OBJECTIVE_DIRECTION_MINIMIZE;
  const request = trainingService.CreateSweepRequest.fromPartial({
    sweep: sweep.Sweep.fromPartial({
      baseTrainingJob: trainingJob.TrainingJob.fromPartial({ preset: "llama3-tiny" }),
      objective: { metric: "eval_loss", direction: minimize },
    }),
    validateOnly: true,
  });
  const error = await unary(training, training.createSweep, request).then(
    () => assert.fail("a sweep without parameters was accepted"),
    (e: unknown) => e,
  );
  assert.ok(isGrpcError(error, status.INVALID_ARGUMENT), String(error));
  const fields = (errorDetails(error)?.badRequest?.fieldViolations ?? []).map((v) => v.field);
  assert.ok(fields.includes("sweep.search_space"), fields.join(" "));
});

test("a call without the token is UNAUTHENTICATED", async (t) => {
  if (!process.env.TUNIX_RT_AUTH_TOKEN) {
    t.skip("the services run without a token");
    return;
  }
  const tokenless = connect({ registry: { ...settingsFromEnv("registry"), token: undefined } });
  try {
    const { registry } = tokenless;
    const request = registryService.ListTracesRequest.fromPartial({ pageSize: 1 });
    const error = await unary(registry, registry.listTraces, request).then(
      () => assert.fail("a call without the token was served"),
      (e: unknown) => e,
    );
    assert.ok(isGrpcError(error, status.UNAUTHENTICATED), String(error));
  } finally {
    tokenless.close();
  }
});
