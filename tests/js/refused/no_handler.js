fromAll().when({ $init: function () { return {}; } });
