/* --------------------------------------------------------- transforms */

/*
 * The per-value transform methods of a contract (docs/transforms.md) as
 * one SQL function: compiled once per call site (method and args cached),
 * applied to one value.  A value the method cannot transform raises the
 * error a batch would quarantine it for; the structural and set-wise
 * methods (from, concat, coalesce, lookup, expression) run only in a
 * batch.  STABLE, not IMMUTABLE: regex_replace obeys the stage.regex_*
 * limits and lower/upper follow the collation.  Pure computation on its
 * arguments, so executable by PUBLIC.
 */
CREATE FUNCTION stage.transform(value text, method text, args jsonb DEFAULT '{}')
RETURNS text LANGUAGE c STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'stage_transform';
COMMENT ON FUNCTION stage.transform(text, text, jsonb) IS
	'one value through one transform method (trim, lower, upper, squish, normalize, replace, regex_replace, nullif, default, map, number, boolean, date, timestamp)';
