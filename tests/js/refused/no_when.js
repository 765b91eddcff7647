fromAll();
