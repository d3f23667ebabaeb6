/* -------------------------------------------------------- privileges */

/*
 * Internal functions (name starting with _) are for the catalog owner
 * only: the gates run them as that role.  Those the views call in the
 * caller's name stay executable; each decides what the caller may see:
 * _may_see, _owns, _withheld, _quarantine, _quarantine_row_data,
 * _quarantine_reasons, _quarantine_count, _workers, _retention_state_for,
 * _partition_rows_for, _backpressure_counts;
 * and so do the pure helpers of the metrics views: _latency_bounds,
 * _label, _quantile.
 */
DO $$
DECLARE
	f regprocedure;
BEGIN
	FOR f IN SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
			  WHERE p.pronamespace OPERATOR(pg_catalog.=) 'stage'::regnamespace
				AND p.proname OPERATOR(pg_catalog.~~) '\_%'
				AND p.proname OPERATOR(pg_catalog.<>) ALL (ARRAY['_may_see', '_owns', '_withheld',
						'_quarantine', '_quarantine_row_data', '_quarantine_reasons',
						'_quarantine_count', '_workers',
						'_retention_state_for', '_partition_rows_for', '_backpressure_counts',
						'_latency_bounds', '_label', '_quantile'])
	LOOP
		EXECUTE pg_catalog.format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
	END LOOP;
END
$$;
