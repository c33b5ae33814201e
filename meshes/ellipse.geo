// Ellipse x²/2² + y²/1.2² ≤ 1 centred at the origin, refined towards the centre where the
// stationary density of derivations/noisy_sgd_convergence.py lives. Boundary "boundary", region "ellipse".
// Regenerate the .msh with: python meshes/regenerate.py
SetFactory("OpenCASCADE");
Disk(1) = {0, 0, 0, 2.0, 1.2};
Point(10) = {0, 0, 0, 1.0};
Point{10} In Surface{1};
Mesh.MeshSizeExtendFromBoundary = 0;
Mesh.MeshSizeFromPoints = 0;
Mesh.MeshSizeFromCurvature = 0;
Field[1] = MathEval;
Field[1].F = "0.035 + 0.05 * (x*x/4 + y*y/1.44)";
Background Field = 1;
Physical Curve("boundary", 1) = {1};
Physical Surface("ellipse", 1) = {1};
