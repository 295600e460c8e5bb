#version 330 core
// A Gaussian's premultiplied colour at one pixel centre (render/gaussians.py, step 3).
// Blend with (ONE, ONE_MINUS_SRC_ALPHA), back to front, to composite (step 4).
// The same source serves WebGL2: swap the first line for `#version 300 es`.
precision highp float;

uniform float u_min_alpha;
uniform float u_max_alpha;

flat in vec2 v_mean_px;
flat in vec3 v_conic;
flat in float v_opacity;
flat in vec3 v_color;

layout(location = 0) out vec4 frag_color;

void main() {
    vec2 delta = gl_FragCoord.xy - v_mean_px;  // pixel centres lie at +0.5, as the equations want
    float power = -0.5 * (v_conic.x * delta.x * delta.x + 2.0 * v_conic.y * delta.x * delta.y
                          + v_conic.z * delta.y * delta.y);
    float alpha = min(u_max_alpha, v_opacity * exp(power));
    if (alpha < u_min_alpha) {
        discard;
    }
    frag_color = vec4(v_color * alpha, alpha);
}
