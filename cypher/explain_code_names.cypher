// Names of diagnosis and procedure codes, and whether the graph knows them at all (codes of a new
// patient that no statement will find are reported by `kgrec recommend`).
// @param codes LIST<STRING>  DiagnosisCode.id / ProcedureCode.id values
// Returns one row per code found: id, name, label.
MATCH (c:DiagnosisCode) WHERE c.id IN $codes
RETURN c.id AS id, c.name AS name, 'DiagnosisCode' AS label;
MATCH (c:ProcedureCode) WHERE c.id IN $codes
RETURN c.id AS id, c.name AS name, 'ProcedureCode' AS label;
