// Rationale: clinical trials that studied an ingredient of the drug class for a disease of the visit.
//   Visit -HAS_DIAGNOSIS-> DiagnosisCode -MAPS_TO-> Disease <-TARGETS- Trial -STUDIES-> Ingredient -IN_CLASS-> Drug
// @param visit_id STRING  Visit.id
// @param drug STRING  Drug.id (ATC level 3)
// Returns one row per path: `path` (each relationship with source and licence), trial, disease, ingredient.
MATCH p = (v:Visit {id: $visit_id})-[:HAS_DIAGNOSIS]->(c:DiagnosisCode)-[:MAPS_TO]->(d:Disease)<-[:TARGETS]-(t:Trial)-[:STUDIES]->(g:Ingredient)-[:IN_CLASS]->(drug:Drug {id: $drug})
RETURN p AS path, t.id AS trial, c.id AS code, d.id AS disease, g.id AS ingredient
ORDER BY trial, code, ingredient
LIMIT 50
