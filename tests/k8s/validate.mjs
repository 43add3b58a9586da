// validate.mjs - checks every object of the given YAML files against the Kubernetes schemas of the
// kubernetes-models package (the API's OpenAPI definitions, compiled), offline. Prints one line per
// object and exits 1 when any object is invalid or of a kind the package does not know. With
// --json OUT first, it also writes every object as a JSON array to OUT, for checks of their content.
import { readFileSync, writeFileSync } from "node:fs";
import yaml from "js-yaml";

async function modelOf(apiVersion, kind) {
  // "v1" -> kubernetes-models/v1/Pod; "apps/v1" -> kubernetes-models/apps/v1/DaemonSet
  if (typeof apiVersion !== "string" || typeof kind !== "string" || !/^[A-Za-z]+$/.test(kind))
    throw new Error("no apiVersion/kind");
  const mod = await import(`kubernetes-models/${apiVersion}/${kind}`);
  return mod[kind];
}

let bad = 0;
let args = process.argv.slice(2), jsonOut = null;
const all = [];
if (args[0] === "--json") {
  jsonOut = args[1];
  args = args.slice(2);
}
for (const file of args) {
  const docs = yaml.loadAll(readFileSync(file, "utf8")).filter((d) => d != null);
  if (docs.length === 0) {
    console.log(`${file}: no objects`);
    bad++;
  }
  for (const doc of docs) {
    all.push(doc);
    const what = `${file}: ${doc.kind}/${doc.metadata && doc.metadata.name}`;
    try {
      const Model = await modelOf(doc.apiVersion, doc.kind);
      new Model(doc).validate();
      console.log(`${what}: valid ${doc.apiVersion} ${doc.kind}`);
    } catch (e) {
      console.log(`${what}: INVALID: ${e.message}`);
      bad++;
    }
  }
}
if (jsonOut) writeFileSync(jsonOut, JSON.stringify(all));
process.exit(bad ? 1 : 0);
