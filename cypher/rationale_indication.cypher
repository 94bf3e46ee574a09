// Rationale: curated indications linking a visit's diagnoses to a drug class.
//   Visit -HAS_DIAGNOSIS-> DiagnosisCode [-CODE_PARENT|GEM-> DiagnosisCode (its category, or its ICD-10 equivalent)]
//     -MAPS_TO-> Disease <-INDICATION- Ingredient -IN_CLASS-> Drug
// and MEDI's code-level indications:
//   Visit -HAS_DIAGNOSIS-> DiagnosisCode [-CODE_PARENT-> DiagnosisCode] <-INDICATION_ICD- Ingredient -IN_CLASS-> Drug
// Every branch starts at the bound visit and follows fixed directions (fast on Ladybug). The
// branches are separate statements (`;`): paths of different shapes cannot be UNIONed in Ladybug.
// @param visit_id STRING  Visit.id, e.g. mimic3:142345
// @param drug STRING  Drug.id (ATC level 3), e.g. B01A
// Returns one row per path: `path` (nodes and relationships in order; each relationship carries its
// source and licence), the route, the code and disease it goes through and the ingredient.
MATCH p = (v:Visit {id: $visit_id})-[:HAS_DIAGNOSIS]->(c:DiagnosisCode)-[:MAPS_TO]->(d:Disease)<-[i:INDICATION]-(g:Ingredient)-[:IN_CLASS]->(drug:Drug {id: $drug})
RETURN p AS path, 'indication' AS route, c.id AS code, d.id AS disease, g.id AS ingredient, i.kind AS kind, i.source AS evidence_source;
MATCH p = (v:Visit {id: $visit_id})-[:HAS_DIAGNOSIS]->(:DiagnosisCode)-[:CODE_PARENT|GEM]->(c:DiagnosisCode)-[:MAPS_TO]->(d:Disease)<-[i:INDICATION]-(g:Ingredient)-[:IN_CLASS]->(drug:Drug {id: $drug})
RETURN p AS path, 'indication (related code)' AS route, c.id AS code, d.id AS disease, g.id AS ingredient, i.kind AS kind, i.source AS evidence_source;
MATCH p = (v:Visit {id: $visit_id})-[:HAS_DIAGNOSIS]->(c:DiagnosisCode)<-[i:INDICATION_ICD]-(g:Ingredient)-[:IN_CLASS]->(drug:Drug {id: $drug})
RETURN p AS path, 'code indication' AS route, c.id AS code, '' AS disease, g.id AS ingredient, 'indication' AS kind, i.source AS evidence_source;
MATCH p = (v:Visit {id: $visit_id})-[:HAS_DIAGNOSIS]->(:DiagnosisCode)-[:CODE_PARENT]->(c:DiagnosisCode)<-[i:INDICATION_ICD]-(g:Ingredient)-[:IN_CLASS]->(drug:Drug {id: $drug})
RETURN p AS path, 'code indication (parent code)' AS route, c.id AS code, '' AS disease, g.id AS ingredient, 'indication' AS kind, i.source AS evidence_source;
