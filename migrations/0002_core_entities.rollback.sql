DROP TABLE api_keys;
DROP TABLE model_configs;
DROP TABLE agents;
DROP TABLE tasks;
DROP TABLE projects;
