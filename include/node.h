/*-------------------------------------------------------------------------
 *
 * node.h
 *	  Which staging node this is (stage.node_name), and the lineage columns
 *	  of a target table.
 *
 *-------------------------------------------------------------------------
 */
#ifndef STAGE_NODE_H
#define STAGE_NODE_H

#include "utils/guc.h"

/* stage.node_name, as set (empty: not set) */
extern char *stage_node_name;

extern const char *stage_node(void);
extern bool stage_node_name_check(char **newval, void **extra, GucSource source);
extern bool stage_is_lineage_column(const char *name);

#endif							/* STAGE_NODE_H */
