"""knit tests. A package so pytest names them tests.*: under the folder platform/ they
would otherwise be named platform.*, shadowing the standard library module."""
