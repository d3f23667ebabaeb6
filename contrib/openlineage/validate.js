// Validate OpenLineage events against JSON schemas: each event against the
// definition its schemaURL names, each facet against the one its
// _schemaURL names.  The schemas are not shipped here: pass the folders
// that hold them (the spec's OpenLineage.json of 2-0-2 and the facet files
// the events name, each under its $id, and this folder for stage_batch).
//
//   npm install ajv@8 ajv-formats@3          (or NODE_PATH=.../node_modules)
//   psql -XAt -c "SELECT event FROM stage.openlineage_events()" |
//       node contrib/openlineage/validate.js SPEC_DIR contrib/openlineage
//
// Prints each problem and a count; exits 1 if any event or facet is invalid.
const fs = require('fs'), path = require('path');
const Ajv2020 = require('ajv/dist/2020'), addFormats = require('ajv-formats');
const ajv = new Ajv2020({strict: false, allErrors: true});
addFormats(ajv);
for (const dir of process.argv.slice(2))
  for (const f of fs.readdirSync(dir).filter(f => f.endsWith('.json')))
    ajv.addSchema(JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')));
const lines = fs.readFileSync(0, 'utf8').split('\n').filter(l => l.trim());
let bad = 0, facets = 0;
function check(url, obj, where) {
  const v = ajv.getSchema(url);
  if (!v) { console.log(`${where}: no schema for ${url}`); bad++; return; }
  if (!v(obj)) { console.log(`${where}: ${JSON.stringify(v.errors)}`); bad++; }
}
lines.forEach((l, i) => {
  const e = JSON.parse(l);
  check(e.schemaURL, e, `event ${i + 1}`);
  const bags = [['run', e.run.facets], ['job', e.job.facets]];
  for (const d of e.inputs || []) bags.push([d.name, d.facets], [d.name, d.inputFacets]);
  for (const d of e.outputs || []) bags.push([d.name, d.facets], [d.name, d.outputFacets]);
  for (const [w, bag] of bags)
    for (const [k, f] of Object.entries(bag || {})) {
      if (!f._schemaURL) { console.log(`event ${i + 1} ${w}.${k}: no _schemaURL`); bad++; continue; }
      facets++;
      check(f._schemaURL, f, `event ${i + 1} ${w}.${k}`);
    }
});
console.log(`${lines.length} events, ${facets} facets checked, ${bad} invalid`);
process.exit(bad ? 1 : 0);
