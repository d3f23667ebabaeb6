
/* ---------------------------------------------------- end of the update */
/*
 * Nothing of 0.2 is left to drop: every 0.2 function and view is in 0.3,
 * replaced above.
 */
