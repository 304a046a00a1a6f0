-- How a message was signed (issue 19): "S/MIME" or "PGP/MIME" when it
-- carried a signature part; the signature itself is not kept as a file
-- and not verified.
ALTER TABLE messages ADD COLUMN signed TEXT;
