/*
 * The same stand-in as bench/io-floor.js's child, in C: a recording worker's I/O with no media
 * work, in one epoll loop (`node bench/io-floor.js 4 --native` builds and runs it; needs a C
 * compiler). It reads the parent's messages on fd 3 and writes each picture with a 12-byte header
 * to its source's pipe, writes 20 ms of PCM per 20 ms from a 33-ms timer, and reads an "epoch"
 * and an "AAC encoder" (two Node producers, as the JavaScript child's), sending what they put out
 * back on fd 3 within 50 ms. What it costs against the JavaScript child is what Node's own
 * machinery adds to the same reads, writes and wake-ups (docs/workers.md, day 32).
 * argv: N sources, the node binary for the producers.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <time.h>
#include <signal.h>
static double now_ms(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec*1e3+t.tv_nsec/1e6;}
static void arm(int fd,long ms,int periodic){struct itimerspec it={0};it.it_value.tv_sec=ms/1000;it.it_value.tv_nsec=(ms%1000)*1000000L;if(periodic)it.it_interval=it.it_value;timerfd_settime(fd,0,&it,NULL);}
int main(int argc,char**argv){
  int N=argc>1?atoi(argv[1]):4; signal(SIGPIPE,SIG_IGN);
  int pipes[64]; for(int i=0;i<N;i++){FILE*f=popen("cat > /dev/null","w");pipes[i]=fileno(f);}
  FILE*af=popen("cat > /dev/null","w"); int audio=fileno(af);
  char cmd[512];
  snprintf(cmd,sizeof cmd,"%s -e 'const b=Buffer.alloc(10000,1);let k=0;const t0=Date.now();setInterval(()=>{for(;k*33.333<Date.now()-t0;k++)process.stdout.write(b)},5)' 2>/dev/null",argv[2]);
  int p1=fileno(popen(cmd,"r"));
  snprintf(cmd,sizeof cmd,"%s -e 'const b=Buffer.alloc(300,1);let k=0;const t0=Date.now();setInterval(()=>{for(;k*21.33<Date.now()-t0;k++)process.stdout.write(b)},5)' 2>/dev/null",argv[2]);
  int p2=fileno(popen(cmd,"r"));
  int ep=epoll_create1(0); struct epoll_event e={.events=EPOLLIN};
  int at=timerfd_create(CLOCK_MONOTONIC,0), lt=timerfd_create(CLOCK_MONOTONIC,0);
  int fds[]={3,p1,p2,at,lt}; for(int i=0;i<5;i++){e.data.fd=fds[i];epoll_ctl(ep,EPOLL_CTL_ADD,fds[i],&e);}
  arm(at,33,1); int lazy=0;
  size_t cap=1<<20,len=0; char*in=malloc(cap); size_t ocap=1<<20,olen=0; char*out=malloc(ocap);
  char pcm[1920]={0}; double t0=now_ms(); long blocks=0; char rb[65536];
  for(;;){struct epoll_event ev[8]; int n=epoll_wait(ep,ev,8,-1);
    for(int i=0;i<n;i++){int fd=ev[i].data.fd;
      if(fd==3){ssize_t r=read(3,in+len,cap-len); if(r<=0) return 0; len+=r; size_t o=0;
        while(len-o>=4){uint32_t l; memcpy(&l,in+o,4); if(len-o-4<l)break;
          if((unsigned char)in[o+4]==1){uint32_t bl=l-4; char h[12]={0}; memcpy(h,&bl,4); struct iovec v[2]={{h,12},{in+o+8,bl}}; writev(pipes[(unsigned char)in[o+5]],v,2);}
          o+=4+l;}
        memmove(in,in+o,len-o); len-=o;}
      else if(fd==p1||fd==p2){ssize_t r=read(fd,rb,sizeof rb); if(r>0){if(olen+r>ocap){ocap*=2;out=realloc(out,ocap);} memcpy(out+olen,rb,r); olen+=r; if(!lazy){arm(lt,50,0);lazy=1;}}}
      else if(fd==lt){uint64_t x; read(lt,&x,8); lazy=0; if(olen){write(3,out,olen);olen=0;}}
      else if(fd==at){uint64_t x; read(at,&x,8); double t=now_ms()-t0; for(;blocks*20<t;blocks++) write(audio,pcm,sizeof pcm);}
    }}
}
