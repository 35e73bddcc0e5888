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
// Only finite numbers become SVG coordinates: anything else (a string, NaN, null) is left out.
function fin(v){return typeof v==='number'&&isFinite(v);}
function range(vs){let lo=Infinity,hi=-Infinity;for(const v of vs){if(v<lo)lo=v;if(v>hi)hi=v;}return [lo,hi];}
// Tick labels with as few digits as keep them apart (a narrow range needs more).
function ticks(vs){for(let p=1;p<=8;p++){const ls=vs.map(v=>Math.abs(v)>=1e4||(v!==0&&Math.abs(v)<1e-2)?v.toExponential(p-1).replace('e+','e'):String(+v.toPrecision(Math.max(p,2))));if(new Set(ls).size===ls.length||p===8)return ls;}}
async function refresh(){
  try{
    const sweeps=await api('/api/sweeps');let html='';
    for(const s of sweeps){
      const d=await api('/api/sweeps/'+s.id);const r=await api('/api/sweeps/'+s.id+'/results?fit=power&bootstrap=200');
      const curves={};for(const c of await api('/api/sweeps/'+s.id+'/curves'))(curves[c.trial]=curves[c.trial]||[]).push(c);
      html+='<h2 class="sweep" data-id="'+esc(s.id)+'">Sweep '+esc(s.id)+': '+esc(s.name)+' <span class="'+esc(d.state)+'">('+esc(d.state)+')</span></h2>';
      html+='<table class="trials"><tr><th>trial</th><th>point</th><th>seed</th><th>state</th><th>attempts</th><th>step</th><th>loss</th><th>ETA</th><th>'+esc(d.metric)+'</th><th>loss curve</th></tr>';
      for(const t of d.trials){const p=t.progress||{};const m=t.result?num(t.result[d.metric],4):'';
        html+='<tr class="trial"><td>'+esc(t.id)+'</td><td>'+esc(t.label??JSON.stringify(t.point))+'</td><td>'+esc(t.seed)+'</td><td class="'+esc(t.state)+'">'+esc(t.state)+(t.held?' (held)':'')+(t.priority?' (priority '+esc(t.priority)+')':'')+'</td><td>'+esc(t.attempts)+'</td><td>'+esc(p.step??'')+(p.steps?'/'+esc(p.steps):'')+'</td><td>'+num(p.loss,4)+'</td><td>'+(p.eta_s!==undefined?esc(Math.round(p.eta_s))+' s':'')+'</td><td>'+m+'</td><td>'+sparkline(t.id,curves[t.id])+'</td></tr>';}
      html+='</table>';
      html+=chart(r);
    }
    document.getElementById('sweeps').innerHTML=html||'no sweeps yet';
  }catch(e){document.getElementById('sweeps').textContent='error: '+e.message;}
}
// A trial's loss against its step, from the heartbeats (GET /api/sweeps/ID/curves): one line per
// attempt, the latest in colour; the last point in the tooltip.
function sparkline(id,attempts){
  const lines=(Array.isArray(attempts)?attempts:[]).map(c=>{const pts=[];const st=Array.isArray(c.step)?c.step:[],ls=Array.isArray(c.loss)?c.loss:[];
    for(let i=0;i<st.length&&i<ls.length;i++)if(fin(st[i])&&fin(ls[i]))pts.push([st[i],ls[i]]);return pts;}).filter(p=>p.length);
  if(!lines.length)return '';
  const all=lines.flat(),[x0,x1]=range(all.map(p=>p[0])),[y0,y1]=range(all.map(p=>p[1])),sx=(x1-x0)||1,sy=(y1-y0)||1;
  if(!fin(sx)||!fin(sy))return '';
  const W=160,H=40,P=3,px=v=>(P+(v-x0)/sx*(W-2*P)).toFixed(1),py=v=>(H-P-(v-y0)/sy*(H-2*P)).toFixed(1);
  const last=lines[lines.length-1][lines[lines.length-1].length-1];
  let s='<svg class="curve" data-trial="'+esc(id)+'" width="'+W+'" height="'+H+'" xmlns="http://www.w3.org/2000/svg"><title>step '+esc(last[0])+': loss '+esc(last[1].toFixed(4))+'</title>';
  lines.forEach((pts,i)=>{s+='<polyline class="loss" fill="none" stroke="'+(i===lines.length-1?'#06c':'#bbb')+'" points="'+esc(pts.map(p=>px(p[0])+','+py(p[1])).join(' '))+'"/>';});
  return s+'</svg>';
}
// The metric against the last axis, one series per value of the other axes. With the power-law fit
// (results?fit=power) x is what the fit used (the parameter count for model scaling) and the fitted
// L = a·x^(−α) + c is drawn with α and its 95% interval in the legend. An axis whose values are all
// positive numbers is drawn on a log scale (and so is the metric when it is positive); any other
// axis by its values in order.
function chart(r){
  if(!r||!Array.isArray(r.rows)||!r.rows.length||!Array.isArray(r.axes)||!r.axes.length)return '';
  const last=r.axes[r.axes.length-1];let series=[],xname=last;
  const fits=r.fit&&Array.isArray(r.fit.fits)?r.fit.fits:[];
  if(fits.length){
    xname=r.fit.x==='parameters'?'parameters':last;
    series=fits.map(f=>({name:f.series,fit:f,pts:(Array.isArray(f.points)?f.points:[]).map(p=>({x:p.x,mean:p.mean,sd:p.sd,values:Array.isArray(p.values)?p.values.filter(fin):[]}))}));
  }else{
    const groups={};
    for(const row of r.rows){if(row.mean===undefined)continue;const g=r.axes.filter(a=>a!==last).map(a=>a+'='+(typeof row.point[a]==='string'?row.point[a]:JSON.stringify(row.point[a]))).join(', ')||r.metric;
      (groups[g]=groups[g]||{name:g,pts:[]}).pts.push({x:row.point[last],mean:row.mean,sd:row.sd,values:[]});}
    series=Object.values(groups);
  }
  series.forEach(s=>{s.pts=s.pts.filter(p=>fin(p.mean)&&p.x!==undefined&&p.x!==null);});
  series=series.filter(s=>s.pts.length);
  if(!series.length)return '';
  const allx=series.flatMap(s=>s.pts.map(p=>p.x)),logx=allx.every(v=>fin(v)&&v>0)&&new Set(allx).size>1;
  const cats=[...new Set(allx.map(v=>JSON.stringify(v)))];
  if(!logx)cats.sort((a,b)=>{const u=JSON.parse(a),v=JSON.parse(b);return fin(u)&&fin(v)?u-v:0;});
  const lx=v=>logx?Math.log10(v):cats.indexOf(JSON.stringify(v));
  const [xa,xb]=logx?range(allx.map(Math.log10)):[-0.5,cats.length-0.5];
  // the fitted curves, sampled on the plot's x range
  series.forEach(s=>{s.curve=[];const f=s.fit;if(!f||!logx||!fin(f.a)||!fin(f.alpha)||!fin(f.c))return;
    for(let i=0;i<=48;i++){const x=Math.pow(10,xa+(xb-xa)*i/48),y=f.a*Math.pow(x,-f.alpha)+f.c;if(fin(y))s.curve.push([x,y]);}});
  const core=series.flatMap(s=>s.pts.flatMap(p=>[p.mean,...p.values]).concat(s.curve.map(c=>c[1])));
  const logy=core.every(v=>v>0),ly=v=>logy?Math.log10(v):v;
  const bars=series.flatMap(s=>s.pts.flatMap(p=>fin(p.sd)?[p.mean-p.sd,p.mean+p.sd]:[])).filter(v=>!logy||v>0);
  let [ya,yb]=range(core.concat(bars).map(ly));
  if(!fin(ya)||!fin(yb)||!fin(xa)||!fin(xb))return '';
  if(yb-ya<1e-9){ya-=0.5;yb+=0.5;}
  const xs=(xb-xa)||1,padx=logx?0.05*xs:0;
  const legends=series.length+(fits.length?1:0),W=560,H=300,L=64,B=44,T=14,R=14,HT=H+8+14*legends;
  const X=v=>(L+(lx(v)-xa+padx)/(xs+2*padx)*(W-L-R)).toFixed(1),Y=v=>(H-B-(ly(v)-ya)/(yb-ya)*(H-B-T)).toFixed(1);
  const colors=['#1f77b4','#d62728','#2ca02c','#9467bd','#ff7f0e','#8c564b'];
  let s='<svg class="plot" width="'+W+'" height="'+HT+'" data-x-scale="'+(logx?'log':'category')+'" data-y-scale="'+(logy?'log':'linear')+'" xmlns="http://www.w3.org/2000/svg">';
  s+='<line x1="'+L+'" y1="'+(H-B)+'" x2="'+(W-R)+'" y2="'+(H-B)+'" stroke="#000"/><line x1="'+L+'" y1="'+T+'" x2="'+L+'" y2="'+(H-B)+'" stroke="#000"/>';
  // ticks: decades on a log axis (1, 2, 5 within a decade when it spans less than two), else every value
  // (a range narrower than 1-2-5 steps gets its ends and middle)
  const logTicks=(a,b)=>{const out=[];for(let k=Math.floor(a);k<=Math.ceil(b);k++)for(const m of (Math.ceil(b)-Math.floor(a)<=2?[1,2,5]:[1])){const v=m*Math.pow(10,k);if(Math.log10(v)>=a-1e-9&&Math.log10(v)<=b+1e-9)out.push(v);}
    return out.length>=2?out:[a,(a+b)/2,b].map(e=>Math.pow(10,e));};
  const xt=logx?logTicks(xa-padx,xb+padx):cats.map(c=>JSON.parse(c));
  const xl=logx?ticks(xt):xt.map(v=>typeof v==='string'?v:JSON.stringify(v));
  xt.forEach((v,i)=>{s+='<line class="tick" x1="'+X(v)+'" y1="'+(H-B)+'" x2="'+X(v)+'" y2="'+(H-B+4)+'" stroke="#000"/><text x="'+X(v)+'" y="'+(H-B+16)+'" font-size="11" text-anchor="middle">'+esc(xl[i])+'</text>';});
  const yt=logy?logTicks(ya,yb):[ya,(ya+yb)/2,yb];
  const yl=ticks(yt);
  yt.forEach((v,i)=>{s+='<line class="tick" x1="'+(L-4)+'" y1="'+Y(v)+'" x2="'+L+'" y2="'+Y(v)+'" stroke="#000"/><text x="'+(L-6)+'" y="'+(Number(Y(v))+4)+'" font-size="10" text-anchor="end">'+esc(yl[i])+'</text>';});
  s+='<text x="'+((W+L)/2)+'" y="'+(H-6)+'" font-size="12" text-anchor="middle">'+esc(xname)+(logx?' (log)':'')+'</text><text x="14" y="'+(H/2)+'" font-size="12" transform="rotate(-90 14 '+(H/2)+')" text-anchor="middle">'+esc(r.metric)+(logy?' (log)':'')+'</text>';
  series.forEach((sr,i)=>{const c=colors[i%colors.length];
    if(sr.curve.length)s+='<polyline class="fit" fill="none" stroke="'+c+'" stroke-width="1.5" points="'+sr.curve.map(p=>X(p[0])+','+Y(p[1])).join(' ')+'"/>';
    else s+='<polyline fill="none" stroke="'+c+'" points="'+sr.pts.map(p=>X(p.x)+','+Y(p.mean)).join(' ')+'"/>';
    sr.pts.forEach(p=>{
      if(fin(p.sd)&&(!logy||p.mean-p.sd>0))s+='<line class="sd" x1="'+X(p.x)+'" y1="'+Y(p.mean-p.sd)+'" x2="'+X(p.x)+'" y2="'+Y(p.mean+p.sd)+'" stroke="'+c+'"/>';
      p.values.forEach(v=>{s+='<circle class="seed" cx="'+X(p.x)+'" cy="'+Y(v)+'" r="2" fill="'+c+'" fill-opacity="0.4"/>';});
      s+='<circle class="mean" cx="'+X(p.x)+'" cy="'+Y(p.mean)+'" r="3.5" fill="'+c+'"/>';});
    const f=sr.fit;let legend=sr.name;
    if(f&&fin(f.alpha)){legend+=': α = '+f.alpha.toFixed(3);if(Array.isArray(f.alpha_ci)&&fin(f.alpha_ci[0])&&fin(f.alpha_ci[1]))legend+=' ['+f.alpha_ci[0].toFixed(3)+', '+f.alpha_ci[1].toFixed(3)+']';}
    s+='<text class="legend" x="'+L+'" y="'+(H+12+14*i)+'" font-size="11" fill="'+c+'">'+esc(legend)+'</text>';});
  if(fits.length)s+='<text class="legend" x="'+L+'" y="'+(H+12+14*series.length)+'" font-size="10" fill="#555">'+esc('fit: L = a·x^(−α) + c, α with its 95% bootstrap interval')+'</text>';
  s+='</svg>';
  if(r.fit_error)s+='<p class="fit-note">'+esc('no power-law fit yet: '+r.fit_error)+'</p>';
  return s;
}
refresh();setInterval(refresh,3000);
</script></body></html>
)HTML";
  return html;
}

}  // namespace recur::coord
