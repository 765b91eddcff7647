// an option Sluice does not know is refused, never silently ignored.
options({ $someOption: true });
fromAll().when({ $any: function (s, e) {} });
