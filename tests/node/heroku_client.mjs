// Drives a running buildd with the `heroku-client` npm package, unchanged: create an app, build
// from a tarball URL, follow the output stream, wait for success, list releases with Range
// pagination, set config vars, and read a Heroku-style error.
//
// Env: BUILDD_URL (http://127.0.0.1:PORT), BUILDD_TOKEN, SOURCE_URL (a tarball), APP (a name).
import assert from "node:assert/strict";
import http from "node:http";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const Heroku = require("heroku-client");

const heroku = new Heroku({ token: process.env.BUILDD_TOKEN, host: process.env.BUILDD_URL });
const app = process.env.APP;

function streamAll(url) {
  return new Promise((resolve, reject) => {
    http.get(url, (res) => {
      assert.equal(res.statusCode, 200);
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (chunk) => (text += chunk));
      res.on("end", () => resolve(text));
    }).on("error", reject);
  });
}

let passed = 0;
async function step(name, fn) {
  await fn();
  passed += 1;
  console.log(`ok - ${name}`);
}

let build;
await step("create an app", async () => {
  const created = await heroku.post("/apps", { body: { name: app } });
  assert.equal(created.name, app);
  assert.equal(created.stack.name, "buildd-1");
});

await step("create a build from a tarball URL", async () => {
  build = await heroku.post(`/apps/${app}/builds`, {
    body: { source_blob: { url: process.env.SOURCE_URL, version: "abc1234" } },
  });
  assert.equal(build.status, "pending");
  assert.match(build.output_stream_url, /^http:\/\//);
});

await step("follow the output stream to its end", async () => {
  const output = await streamAll(build.output_stream_url);
  assert.match(output, /-----> Procfile app detected/);
  assert.match(output, /Released v1/);
});

await step("the build succeeded", async () => {
  const info = await heroku.get(`/apps/${app}/builds/${build.id}`);
  assert.equal(info.status, "succeeded");
  assert.ok(info.slug.id);
});

await step("set config vars (a new release)", async () => {
  const vars = await heroku.patch(`/apps/${app}/config-vars`, { body: { GREETING: "hi" } });
  assert.deepEqual(vars, { GREETING: "hi" });
});

await step("list releases newest first, with Range", async () => {
  const releases = await heroku.get(`/apps/${app}/releases`, {
    partial: true,
    headers: { Range: "version ..; max=10, order=desc" },
  });
  assert.equal(releases.length, 2);
  assert.equal(releases[0].version, 2);
  assert.equal(releases[0].current, true);
  assert.equal(releases[1].description, "Deploy abc1234");
});

await step("the client follows Next-Range across pages", async () => {
  for (const n of [1, 2, 3]) {
    await heroku.post("/apps", { body: { name: `${app}-p${n}` } });
  }
  const all = await heroku.get("/apps", { headers: { Range: "name ..; max=1" } });
  const names = all.map((a) => a.name).filter((n) => n.startsWith(app));
  assert.deepEqual(names, [app, `${app}-p1`, `${app}-p2`, `${app}-p3`]);
});

await step("errors carry Heroku's id and status", async () => {
  await assert.rejects(heroku.get("/apps/no-such-app-here"), (err) => {
    assert.equal(err.statusCode, 404);
    assert.equal(err.body.id, "not_found");
    return true;
  });
});

console.log(`${passed} passed, 0 failed`);
