// Validates every ServiceMonitor and PrometheusRule (monitoring.coreos.com/v1) in the YAML files
// given against prometheus-operator's CRD schemas, as compiled in npm's
// @kubernetes-models/prometheus-operator (types, enums, patterns and required fields; like
// Kubernetes' structural schemas they do not reject unknown fields). Installed and wrapped by
// sfgi-gotool (REGISTRY_TOOLS):
//   node validate-monitoring-crds.mjs NODE_MODULES FILE...
// Prints `valid FILE KIND/NAME` per object; exits 1 on any invalid object or file.
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

const [nodeModules, ...files] = process.argv.slice(2);
if (!nodeModules || files.length === 0) {
  console.error("usage: validate-monitoring-crds NODE_MODULES FILE...");
  process.exit(2);
}
const load = (p) => import(pathToFileURL(`${nodeModules}/${p}`).href);
const models = {};
for (const kind of ["ServiceMonitor", "PrometheusRule"]) {
  const m = await load(`@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/${kind}.js`);
  models[kind] = m[kind];
}
const yamlModule = await load("yaml/dist/index.js");
const YAML = yamlModule.default ?? yamlModule;

let failed = false;
for (const file of files) {
  let docs;
  try {
    docs = YAML.parseAllDocuments(readFileSync(file, "utf8"));
  } catch (e) {
    console.log(`invalid ${file}: ${e.message}`);
    failed = true;
    continue;
  }
  for (const d of docs) {
    if (d.errors.length > 0) {
      console.log(`invalid ${file}: ${d.errors[0].message}`);
      failed = true;
      continue;
    }
    const obj = d.toJS();
    const Model = obj ? models[obj.kind] : undefined;
    if (!Model) continue;
    const name = `${obj.kind}/${obj.metadata?.name ?? "?"}`;
    if (obj.apiVersion !== "monitoring.coreos.com/v1") {
      console.log(`invalid ${file} ${name}: apiVersion ${obj.apiVersion}`);
      failed = true;
      continue;
    }
    try {
      new Model(obj).validate();
      console.log(`valid ${file} ${name}`);
    } catch (e) {
      console.log(`invalid ${file} ${name}: ${e.message}`);
      failed = true;
    }
  }
}
process.exit(failed ? 1 : 0);
