/*-------------------------------------------------------------------------
 *
 * node.c
 *	  Which staging node this is, and the lineage columns of a target.
 *
 * A staging node names itself with stage.node_name (set in
 * postgresql.conf, or per database with ALTER DATABASE ... SET by a
 * superuser).  The name goes into the node column of the catalog's history
 * tables and into a target's _stage_node lineage column, so that a
 * warehouse that subscribes to several nodes keeps their rows apart (their
 * pipeline, batch and landing ids are each node's own).  Unset, a node is
 * named by its cluster's system identifier and its database: unique, but
 * not readable, and it changes when the database is renamed.
 *
 * The lineage columns (_stage_id, _stage_batch, _stage_node) are filled by
 * the mover; they never come from landing.
 *
 * Touches nothing: reads a GUC, the control file's system identifier and
 * the database's name.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xlog.h"
#include "commands/dbcommands.h"
#include "miscadmin.h"
#include "utils/builtins.h"

#include "node.h"

char	   *stage_node_name = NULL;

/* the name of the node, as its rows carry it */
const char *
stage_node(void)
{
	static char fallback[NAMEDATALEN + 32];

	if (stage_node_name != NULL && stage_node_name[0] != '\0')
		return stage_node_name;
	if (fallback[0] == '\0')
	{
		char	   *db = get_database_name(MyDatabaseId);

		snprintf(fallback, sizeof(fallback), UINT64_FORMAT "/%s",
				 GetSystemIdentifier(), db ? db : "");
	}
	return fallback;
}

/* stage.node_name: letters, digits, '_', '-' and '.', at most 63 bytes */
bool
stage_node_name_check(char **newval, void **extra, GucSource source)
{
	const char *c;

	if (*newval == NULL)
		return true;
	if (strlen(*newval) > 63)
	{
		GUC_check_errdetail("A node name has at most 63 bytes.");
		return false;
	}
	for (c = *newval; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
			  (*c >= '0' && *c <= '9') || *c == '_' || *c == '-' || *c == '.'))
		{
			GUC_check_errdetail("A node name has only letters, digits, \"_\", \"-\" and \".\".");
			return false;
		}
	return true;
}

/* is this the name of a lineage column (filled by the mover, never landed)? */
bool
stage_is_lineage_column(const char *name)
{
	return strcmp(name, "_stage_id") == 0 || strcmp(name, "_stage_batch") == 0 ||
		strcmp(name, "_stage_node") == 0;
}

/* stage.node_name(): the name the node's rows carry */
PG_FUNCTION_INFO_V1(stage_node_name_sql);
Datum
stage_node_name_sql(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(stage_node()));
}
