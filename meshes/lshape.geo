// L-shaped domain [-1, 1]^2 minus the quadrant (0, 1] x (0, 1]. Boundaries "outer" (the four
// sides on the square) and "notch" (the two re-entrant sides); region "L".
// Regenerate the .msh with: python meshes/regenerate.py
lc = 0.05;
Point(1) = {-1, -1, 0, lc};
Point(2) = {1, -1, 0, lc};
Point(3) = {1, 0, 0, lc};
Point(4) = {0, 0, 0, lc};
Point(5) = {0, 1, 0, lc};
Point(6) = {-1, 1, 0, lc};
Line(1) = {1, 2};
Line(2) = {2, 3};
Line(3) = {3, 4};
Line(4) = {4, 5};
Line(5) = {5, 6};
Line(6) = {6, 1};
Curve Loop(1) = {1, 2, 3, 4, 5, 6};
Plane Surface(1) = {1};
Physical Curve("outer", 1) = {1, 2, 5, 6};
Physical Curve("notch", 2) = {3, 4};
Physical Surface("L", 1) = {1};
