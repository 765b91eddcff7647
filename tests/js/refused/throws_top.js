// top level
throw new Error("boom");
