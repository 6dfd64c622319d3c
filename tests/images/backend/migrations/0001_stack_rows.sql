-- A table the stack tests write through the stand-in backend.
CREATE TABLE stack_rows (value VARCHAR(200) PRIMARY KEY);
