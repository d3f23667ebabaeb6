/* ----------------------------------------------------- the gate's helpers */

/* the role the API acts for (the gate's caller); internal */
CREATE FUNCTION stage._caller() RETURNS regrole
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'stage_caller_sql';

/* may the caller act for pipelines of this owner? (member or superuser) */
CREATE FUNCTION stage._owns(owner regrole) RETURNS boolean
LANGUAGE c STABLE STRICT
AS 'MODULE_PATHNAME', 'stage_owns_sql';

/* may the caller see the outcomes of pipelines of this owner? (also stage_analyst) */
CREATE FUNCTION stage._may_see(owner regrole) RETURNS boolean
LANGUAGE c STABLE STRICT
AS 'MODULE_PATHNAME', 'stage_may_see_sql';

/* error if this session is inside a batch, replay or check of the pipeline */
CREATE FUNCTION stage._check_idle(pipeline_id integer, name text) RETURNS void
LANGUAGE c VOLATILE STRICT
AS 'MODULE_PATHNAME', 'stage_check_idle';

/* the message shown in place of a server's that may quote a masked value */
CREATE FUNCTION stage._withheld(sqlstate text) RETURNS text
LANGUAGE c IMMUTABLE
AS 'MODULE_PATHNAME', 'stage_withheld';


/*
 * the name of this staging node (stage.node_name): the node column of the
 * history tables and a target's _stage_node lineage column
 */
CREATE FUNCTION stage.node_name() RETURNS text
LANGUAGE c STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'stage_node_name_sql';
COMMENT ON FUNCTION stage.node_name() IS
	'the name of this staging node: stage.node_name, or the system identifier and the database';
