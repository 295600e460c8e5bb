#version 330 core
// One Gaussian per instance, drawn as a quad that bounds its splat (render/gaussians.py, steps 1-3).
// The same source serves WebGL2: swap the first line for `#version 300 es`.
precision highp float;

uniform mat4 u_view;          // world -> camera, cm
uniform vec2 u_focal_px;      // (fx, fy)
uniform vec2 u_principal_px;  // (cx, cy)
uniform vec2 u_size_px;       // (width, height)
uniform float u_near_cm;
uniform float u_dilation_px2;
uniform float u_min_alpha;

in vec2 a_corner;             // quad corner in {-1, 1}^2
in vec3 a_mean;               // world centre, cm
in vec3 a_cov_x;              // covariance (xx, xy, xz), cm^2
in vec3 a_cov_yz;             // covariance (yy, yz, zz), cm^2
in float a_opacity;
in vec3 a_color;

flat out vec2 v_mean_px;
flat out vec3 v_conic;        // (a, b, c) of the inverse 2D covariance [[a, b], [b, c]]
flat out float v_opacity;
flat out vec3 v_color;

void main() {
    v_opacity = a_opacity;
    v_color = a_color;
    vec3 p = (u_view * vec4(a_mean, 1.0)).xyz;
    float d = -p.z;
    // Outside the clip volume: the whole quad is dropped before rasterization.
    if (!(d > u_near_cm) || a_opacity < u_min_alpha) {
        v_mean_px = vec2(0.0);
        v_conic = vec3(0.0);
        gl_Position = vec4(0.0, 0.0, 2.0, 1.0);
        return;
    }

    mat3 sigma = mat3(a_cov_x, vec3(a_cov_x.y, a_cov_yz.xy), vec3(a_cov_x.z, a_cov_yz.yz));
    // J as 3 columns of 2 rows: [[fx/d, 0, fx x/d^2], [0, -fy/d, -fy y/d^2]] (v grows downwards).
    mat3x2 jacobian = mat3x2(u_focal_px.x / d, 0.0,
                             0.0, -u_focal_px.y / d,
                             u_focal_px.x * p.x / (d * d), -u_focal_px.y * p.y / (d * d));
    mat3x2 m = jacobian * mat3(u_view);
    mat2 cov = m * sigma * transpose(m) + mat2(u_dilation_px2);
    float a = cov[0][0], b = cov[0][1], c = cov[1][1];
    v_conic = vec3(c, -b, a) / (a * c - b * b);
    v_mean_px = u_principal_px + vec2(u_focal_px.x * p.x, -u_focal_px.y * p.y) / d;

    // The support o exp(-q/2) >= MIN_ALPHA is the ellipse q <= 2 ln(o / MIN_ALPHA); the quad is
    // its bounding box along the eigenvectors, half-sides sqrt(2 ln(o / MIN_ALPHA) lambda_i).
    float mid = 0.5 * (a + c);
    float spread = sqrt(0.25 * (a - c) * (a - c) + b * b);
    vec2 lambda = vec2(mid + spread, max(mid - spread, 0.0));
    // Of the two forms of the major eigenvector, take the one that cannot vanish when b = 0.
    vec2 major = a >= c ? vec2(lambda.x - c, b) : vec2(b, lambda.x - a);
    float length_major = length(major);
    major = length_major > 0.0 ? major / length_major : vec2(1.0, 0.0);
    vec2 half_sides = sqrt(2.0 * log(a_opacity / u_min_alpha) * lambda);
    vec2 corner_px = v_mean_px + a_corner.x * half_sides.x * major
                               + a_corner.y * half_sides.y * vec2(-major.y, major.x);

    // Pixel row v maps to framebuffer row v (GL counts rows from the bottom), so reading the
    // framebuffer back yields image row 0 first and gl_FragCoord.xy is (u, v) itself.
    gl_Position = vec4(2.0 * corner_px / u_size_px - 1.0, 0.0, 1.0);
}
