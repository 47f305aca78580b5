DROP TABLE code_edges;
DROP TABLE code_symbols;
DROP TABLE code_graphs;
