--
-- contract_diff: what a proposed contract changes (rules, masks,
-- transforms, key and policies), what set_contract would refuse against
-- the target as it is now, and the columns the target and the landing
-- table no longer share; breaking marks what a CI job should stop on.  A
-- malformed document raises set_contract's error; owners and
-- stage_analyst may call it; it writes nothing.
--
-- Every object of this file is prefixed cd_; the file drops what it creates.
--
\set SHOW_CONTEXT never
DROP ROLE IF EXISTS cd_stranger;
DROP ROLE IF EXISTS cd_analyst;
SELECT count(*) AS analyst_role FROM stage.create_roles() WHERE role_name = 'stage_analyst';
CREATE ROLE cd_stranger NOLOGIN;
CREATE ROLE cd_analyst NOLOGIN IN ROLE stage_analyst;

CREATE TABLE cd_orders (
	id		integer PRIMARY KEY,
	email	text,
	card	text,
	qty		integer,
	status	text,
	note	text,
	placed	date
);
SELECT stage.create_pipeline('cd_orders', 'cd_orders');
SELECT stage.create_secret('cd_key', '\x000102030405060708090a0b0c0d0e0f'::bytea);
SELECT stage.set_contract('cd_orders', '{
	"key": ["id"],
	"on_duplicate": "skip",
	"max_reject_ratio": 0.2,
	"transforms": [
		{"column": "email", "method": "trim"},
		{"column": "status", "method": "lower"}
	],
	"rules": [
		{"column": "email", "kind": "format", "args": {"format": "email"}},
		{"column": "qty", "kind": "range", "args": {"min": 0, "max": 100}},
		{"column": "status", "kind": "enum", "args": {"values": ["new", "paid"]}},
		{"column": "note", "kind": "length", "args": {"max": 200}, "severity": "warn"},
		{"column": "placed", "kind": "not_null"}
	],
	"masks": [
		{"column": "email", "method": "hash", "args": {"secret": "cd_key", "length": 16}},
		{"column": "card", "method": "card"}
	]
}') AS version;

-- what nothing may change: the version and the history
CREATE TABLE cd_counts AS
SELECT (SELECT contract_version FROM stage.pipeline WHERE name = 'cd_orders') AS version,
	   (SELECT count(*) FROM stage.contract_history) AS history;

----------------------------------------------------------------------------
-- 1. Nothing to report: the current contract, as it is or spelled otherwise
----------------------------------------------------------------------------
SELECT * FROM stage.contract_diff('cd_orders');
SELECT * FROM stage.contract_diff('cd_orders', stage.contract('cd_orders'));
-- without version and defaults, keys in another order: the same contract
SELECT count(*) AS rows FROM stage.contract_diff('cd_orders', stage.contract('cd_orders') - 'version' - 'drift');

----------------------------------------------------------------------------
-- 2. Rules: added, removed, changed; stricter is breaking, looser is not
----------------------------------------------------------------------------
CREATE FUNCTION cd_with_rules(rules jsonb) RETURNS jsonb LANGUAGE sql AS
$$ SELECT stage.contract('cd_orders') || jsonb_build_object('rules', rules) $$;

-- qty wider, status with one more value, note stricter but warn,
-- placed removed, a new reject rule and a new warn rule
SELECT * FROM stage.contract_diff('cd_orders', cd_with_rules('[
	{"column": "email", "kind": "format", "args": {"format": "email"}},
	{"column": "qty", "kind": "range", "args": {"min": -10}},
	{"column": "status", "kind": "enum", "args": {"values": ["new", "paid", "shipped"]}},
	{"column": "note", "kind": "length", "args": {"max": 100}, "severity": "warn"},
	{"column": "card", "kind": "format", "args": {"format": "card"}},
	{"column": "note", "kind": "no_pii", "severity": "warn"}
]'));

-- narrower range, fewer enum values, warn becoming reject, a new kind
SELECT * FROM stage.contract_diff('cd_orders', cd_with_rules('[
	{"column": "email", "kind": "format", "args": {"format": "email"}},
	{"column": "qty", "kind": "range", "args": {"min": 1, "max": 100}},
	{"column": "status", "kind": "enum", "args": {"values": ["new"]}},
	{"column": "note", "kind": "length", "args": {"max": 200}, "severity": "reject"},
	{"column": "placed", "kind": "not_null"}
]'));

-- reject becoming warn is not breaking; a rule on another column is;
-- a new bound where there was none is
SELECT * FROM stage.contract_diff('cd_orders', cd_with_rules('[
	{"column": "email", "kind": "format", "args": {"format": "email"}, "severity": "warn"},
	{"column": "qty", "kind": "range", "args": {"min": 0, "max": 100}},
	{"column": "status", "kind": "enum", "args": {"values": ["new", "paid"]}},
	{"column": "note", "kind": "length", "args": {"min": 1, "max": 300}, "severity": "warn"},
	{"name": "placed_not_null", "column": "qty", "kind": "not_null"}
]'));

-- the same rules in another order: moved, not breaking
SELECT * FROM stage.contract_diff('cd_orders', cd_with_rules('[
	{"column": "qty", "kind": "range", "args": {"min": 0, "max": 100}},
	{"column": "email", "kind": "format", "args": {"format": "email"}},
	{"column": "status", "kind": "enum", "args": {"values": ["new", "paid"]}},
	{"column": "note", "kind": "length", "args": {"max": 200}, "severity": "warn"},
	{"column": "placed", "kind": "not_null"}
]'));

----------------------------------------------------------------------------
-- 3. Masks: a removed or changed mask is breaking, a new one is not
----------------------------------------------------------------------------
SELECT * FROM stage.contract_diff('cd_orders', stage.contract('cd_orders') || '{"masks": [
	{"column": "email", "method": "hash", "args": {"secret": "cd_key", "length": 32}},
	{"column": "note", "method": "redact_pii"}
]}');
SELECT * FROM stage.contract_diff('cd_orders', stage.contract('cd_orders') || '{"masks": [
	{"column": "email", "method": "email"},
	{"column": "card", "method": "card"}
]}');

----------------------------------------------------------------------------
-- 4. Transforms: every change is breaking (values and refusals change)
----------------------------------------------------------------------------
SELECT * FROM stage.contract_diff('cd_orders', stage.contract('cd_orders') || '{"transforms": [
	{"column": "status", "method": "lower"},
	{"column": "email", "method": "trim", "args": {"chars": " ."}},
	{"column": "note", "method": "squish"}
]}');
SELECT * FROM stage.contract_diff('cd_orders', stage.contract('cd_orders') || '{"transforms": []}');

----------------------------------------------------------------------------
-- 5. Key and policies
----------------------------------------------------------------------------
SELECT * FROM stage.contract_diff('cd_orders', stage.contract('cd_orders')
	|| '{"on_duplicate": "quarantine", "max_reject_ratio": 0.1, "drift": "hold"}');
SELECT * FROM stage.contract_diff('cd_orders', stage.contract('cd_orders')
	|| '{"on_duplicate": "update", "max_reject_ratio": null}');
SELECT * FROM stage.contract_diff('cd_orders', stage.contract('cd_orders')
	|| '{"max_reject_ratio": 0.5, "drift": "quarantine"}');
-- no key: the unique-free contract is fine; the key's masks and rules stay valid
SELECT * FROM stage.contract_diff('cd_orders', stage.contract('cd_orders') || '{"key": null}');
-- a key without a unique index is refused, as set_contract refuses it
SELECT * FROM stage.contract_diff('cd_orders', stage.contract('cd_orders') || '{"key": ["qty"]}');
-- a mask on the key column, a unique rule off the key, two masks on a column
SELECT * FROM stage.contract_diff('cd_orders', stage.contract('cd_orders') || '{
	"rules": [{"column": "qty", "kind": "unique"}],
	"masks": [{"column": "id", "method": "null"}, {"column": "card", "method": "card"},
			  {"column": "card", "method": "redact"}]}');

----------------------------------------------------------------------------
-- 6. The target changes under the contract
----------------------------------------------------------------------------
-- (with the event trigger that keeps landing tables in step disabled, as
-- a superuser may do, or as for a change made while it was: the landing
-- no longer follows, and contract_diff says what differs)
ALTER EVENT TRIGGER stage_follow_target DISABLE;
-- a column added: producers cannot send it (nullable: not breaking)
ALTER TABLE cd_orders ADD COLUMN channel text;
SELECT * FROM stage.contract_diff('cd_orders');
-- NOT NULL without a default: the target would refuse every row
ALTER TABLE cd_orders ADD COLUMN region text NOT NULL;
ALTER TABLE cd_orders ADD COLUMN shop integer NOT NULL DEFAULT 1;
SELECT * FROM stage.contract_diff('cd_orders');
ALTER TABLE cd_orders DROP COLUMN region, DROP COLUMN shop;
-- a landing column for it: nothing more to report
SELECT stage.add_landing_column('cd_orders', 'channel');
SELECT * FROM stage.contract_diff('cd_orders');
-- a column dropped: its rule and transform no longer compile, its landing
-- column is left without a target
ALTER TABLE cd_orders DROP COLUMN status;
SELECT * FROM stage.contract_diff('cd_orders');
-- a proposed contract without them: what remains is the landing column
SELECT * FROM stage.contract_diff('cd_orders', stage.contract('cd_orders') || '{
	"transforms": [{"column": "email", "method": "trim"}],
	"rules": [
		{"column": "email", "kind": "format", "args": {"format": "email"}},
		{"column": "qty", "kind": "range", "args": {"min": 0, "max": 100}},
		{"column": "note", "kind": "length", "args": {"max": 200}, "severity": "warn"},
		{"column": "placed", "kind": "not_null"}
	]}');
-- ... unless a transform reads it
SELECT * FROM stage.contract_diff('cd_orders', stage.contract('cd_orders') || '{
	"transforms": [{"column": "email", "method": "trim"},
				   {"column": "note", "method": "coalesce", "args": {"columns": ["note", "status"]}}],
	"rules": []}') WHERE object <> 'rule';
-- a column retyped: the range and the mask no longer apply to it
ALTER TABLE cd_orders ALTER COLUMN qty TYPE text, ALTER COLUMN card TYPE integer USING NULL;
SELECT change, object, name, column_name, breaking, detail
  FROM stage.contract_diff('cd_orders') WHERE change = 'refused';

-- a CI job's test
SELECT count(*) FILTER (WHERE breaking) AS breaking, count(*) AS changes
  FROM stage.contract_diff('cd_orders');
ALTER EVENT TRIGGER stage_follow_target ENABLE;
-- enabled again, the next ALTER TABLE of this target meets what changed
-- meanwhile: the card mask no longer applies, the ALTER is refused
ALTER TABLE cd_orders ADD COLUMN coupon text;
-- and on a target in step, a column added is followed at once: nothing to report
CREATE TABLE cd_more (id integer PRIMARY KEY);
SELECT stage.create_pipeline('cd_more', 'cd_more', key => '{id}');
ALTER TABLE cd_more ADD COLUMN coupon text;
SELECT count(*) AS differences FROM stage.contract_diff('cd_more');
SELECT stage.drop_pipeline('cd_more');
DROP TABLE cd_more;

----------------------------------------------------------------------------
-- 7. An invalid document: set_contract's own errors
----------------------------------------------------------------------------
\set VERBOSITY terse
SELECT * FROM stage.contract_diff('cd_orders', '[]');
SELECT stage.set_contract('cd_orders', '[]');
SELECT * FROM stage.contract_diff('cd_orders', '{"rulez": []}');
SELECT stage.set_contract('cd_orders', '{"rulez": []}');
SELECT * FROM stage.contract_diff('cd_orders', '{"rules": {}}');
SELECT * FROM stage.contract_diff('cd_orders', '{"rules": [{"column": "qty", "kind": "not_null", "severty": "warn"}]}');
SELECT stage.set_contract('cd_orders', '{"rules": [{"column": "qty", "kind": "not_null", "severty": "warn"}]}');
SELECT * FROM stage.contract_diff('cd_orders', '{"max_reject_ratio": 2}');
SELECT stage.set_contract('cd_orders', '{"max_reject_ratio": 2}');
SELECT * FROM stage.contract_diff('cd_orders', '{"key": "id"}');
SELECT * FROM stage.contract_diff('cd_orders', '{"on_duplicate": "merge"}');
SELECT * FROM stage.contract_diff('cd_orders', '{"drift": "stop"}');
SELECT * FROM stage.contract_diff('cd_nope');
SELECT * FROM stage.contract_diff(NULL);
\set VERBOSITY default

----------------------------------------------------------------------------
-- 8. Who may call it
----------------------------------------------------------------------------
SET ROLE cd_stranger;
SELECT * FROM stage.contract_diff('cd_orders');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SET ROLE cd_analyst;
SELECT count(*) FILTER (WHERE breaking) AS breaking, count(*) AS changes
  FROM stage.contract_diff('cd_orders');
-- a proposed mask's secret is checked with the analyst's rights, not the owner's
SELECT change, object, column_name, breaking, detail
  FROM stage.contract_diff('cd_orders', stage.contract('cd_orders') || '{"masks": [
	{"column": "note", "method": "hash", "args": {"secret": "cd_key"}}]}')
 WHERE object = 'mask';
RESET ROLE;
-- the owner may use it
SELECT change, object, column_name, breaking, detail
  FROM stage.contract_diff('cd_orders', stage.contract('cd_orders') || '{"masks": [
	{"column": "note", "method": "hash", "args": {"secret": "cd_key"}}]}')
 WHERE object = 'mask';

----------------------------------------------------------------------------
-- 9. Nothing was written
----------------------------------------------------------------------------
SELECT c.version = p.contract_version AS same_version,
	   c.history = (SELECT count(*) FROM stage.contract_history) AS same_history
  FROM cd_counts c, stage.pipeline p WHERE p.name = 'cd_orders';
SELECT count(*) AS rules FROM stage.rule r JOIN stage.pipeline p USING (pipeline_id) WHERE p.name = 'cd_orders';
-- and in a read-only transaction it runs all the same
BEGIN TRANSACTION READ ONLY;
SELECT count(*) > 0 AS reported FROM stage.contract_diff('cd_orders', '{}');
COMMIT;

SELECT stage.drop_pipeline('cd_orders');
DELETE FROM stage.secret WHERE name = 'cd_key';
DROP FUNCTION cd_with_rules(jsonb);
DROP TABLE cd_orders, cd_counts;
DROP ROLE cd_stranger, cd_analyst;
-- the group roles create_roles made above are cluster-wide: they go too
DROP OWNED BY stage_producer, stage_analyst;
DROP ROLE stage_producer, stage_analyst;
