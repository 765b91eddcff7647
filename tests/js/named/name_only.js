// Only the name from options: the id follows the name.
options({ $name: 'ledger' });
fromAll().when({ $any: function (s, e) { s.n = (s.n || 0) + 1; } });
