"""Unit tests of the core: real files in tmp_path, real threads, no mocks."""
