// See page.h. Plain HTML + JavaScript (no external scripts): the page must work on a login node
// without Internet access.
#include "coord/page.h"

namespace recur::coord {

const std::string& page_html() {
  static const std::string html = R"HTML(<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Recur coordinator</title>
<style>
body{font-family:sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}
td,th{border:1px solid #ccc;padding:.25em .6em;font-size:90%;text-align:left}
th{background:#f3f3f3}.succeeded{color:#080}.failed{color:#b00}.running{color:#06c}.cancelled{color:#888}
</style></head>
<body>
<h1>Recur coordinator</h1>
<div id="sweeps">loading…</div>
<script>
const token = new URLSearchParams(location.search).get('token') || '';
async function api(path){const r=await fetch(path,{headers:{'Authorization':'Bearer '+token}});if(!r.ok)throw new Error(path+': '+r.status);return r.json();}
// Every value from the API goes through esc(): agents write progress, and a token holder is not the page.
function esc(s){return String(s).replace(/[&<>"']/g,c=>({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;',"'":'&#39;'}[c]));}
function num(v,digits){return v===undefined||v===null?'':esc(Number(v).toFixed(digits));}
async function refresh(){
  try{
    const sweeps=await api('/api/sweeps');let html='';
    for(const s of sweeps){
      const d=await api('/api/sweeps/'+s.id);const r=await api('/api/sweeps/'+s.id+'/results');
      html+='<h2 class="sweep" data-id="'+esc(s.id)+'">Sweep '+esc(s.id)+': '+esc(s.name)+' <span class="'+esc(d.state)+'">('+esc(d.state)+')</span></h2>';
      html+='<table class="trials"><tr><th>trial</th><th>point</th><th>seed</th><th>state</th><th>attempts</th><th>step</th><th>loss</th><th>ETA</th><th>'+esc(d.metric)+'</th></tr>';
      for(const t of d.trials){const p=t.progress||{};const m=t.result?num(t.result[d.metric],4):'';
        html+='<tr class="trial"><td>'+esc(t.id)+'</td><td>'+esc(t.label??JSON.stringify(t.point))+'</td><td>'+esc(t.seed)+'</td><td class="'+esc(t.state)+'">'+esc(t.state)+(t.held?' (held)':'')+(t.priority?' (priority '+esc(t.priority)+')':'')+'</td><td>'+esc(t.attempts)+'</td><td>'+esc(p.step??'')+(p.steps?'/'+esc(p.steps):'')+'</td><td>'+num(p.loss,4)+'</td><td>'+(p.eta_s!==undefined?esc(Math.round(p.eta_s))+' s':'')+'</td><td>'+m+'</td></tr>';}
      html+='</table>';
      html+=chart(r);
    }
    document.getElementById('sweeps').innerHTML=html||'no sweeps yet';
  }catch(e){document.getElementById('sweeps').textContent='error: '+e.message;}
}
// metric vs the last axis, one line per value of the other axes: an SVG drawn from the results.
function chart(r){
  if(!r.rows.length||!r.axes.length)return '';
  const x=r.axes[r.axes.length-1];const groups={};
  for(const row of r.rows){if(row.mean===undefined)continue;const g=r.axes.filter(a=>a!==x).map(a=>a+'='+(typeof row.point[a]==='string'?row.point[a]:JSON.stringify(row.point[a]))).join(', ')||r.metric;(groups[g]=groups[g]||[]).push([row.point[x],row.mean,row.sd||0]);}
  const keys=Object.keys(groups);if(!keys.length)return '';
  const xs=[...new Set(r.rows.map(rw=>rw.point[x]))];const ys=keys.flatMap(k=>groups[k].map(p=>p[1]));
  const W=520,H=300,L=60,B=40,lo=Math.min(...ys),hi=Math.max(...ys),span=(hi-lo)||1;
  const px=v=>L+(xs.indexOf(v)+0.5)*(W-L-10)/xs.length,py=v=>H-B-(v-lo)/span*(H-B-20);
  const colors=['#1f77b4','#d62728','#2ca02c','#9467bd','#ff7f0e','#8c564b'];
  let s='<svg class="plot" width="'+W+'" height="'+H+'" xmlns="http://www.w3.org/2000/svg"><line x1="'+L+'" y1="'+(H-B)+'" x2="'+W+'" y2="'+(H-B)+'" stroke="#000"/><line x1="'+L+'" y1="10" x2="'+L+'" y2="'+(H-B)+'" stroke="#000"/>';
  xs.forEach(v=>{s+='<text x="'+px(v)+'" y="'+(H-B+15)+'" font-size="11" text-anchor="middle">'+esc(v)+'</text>';});
  s+='<text x="'+((W+L)/2)+'" y="'+(H-5)+'" font-size="12" text-anchor="middle">'+esc(x)+'</text><text x="12" y="'+(H/2)+'" font-size="12" transform="rotate(-90 12 '+(H/2)+')" text-anchor="middle">'+esc(r.metric)+'</text>';
  s+='<text x="'+(L-5)+'" y="'+py(lo)+'" font-size="10" text-anchor="end">'+num(lo,3)+'</text><text x="'+(L-5)+'" y="'+py(hi)+'" font-size="10" text-anchor="end">'+num(hi,3)+'</text>';
  keys.forEach((k,i)=>{const c=colors[i%colors.length];const pts=groups[k];s+='<polyline fill="none" stroke="'+c+'" points="'+pts.map(p=>px(p[0])+','+py(p[1])).join(' ')+'"/>';
    pts.forEach(p=>{s+='<circle cx="'+px(p[0])+'" cy="'+py(p[1])+'" r="3" fill="'+c+'"/>';});s+='<text x="'+(L+8)+'" y="'+(20+14*i)+'" font-size="11" fill="'+c+'">'+esc(k)+'</text>';});
  return s+'</svg>';
}
refresh();setInterval(refresh,3000);
</script></body></html>
)HTML";
  return html;
}

}  // namespace recur::coord
