#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <jpeglib.h>
#include "imgpar/codec.h"
#include "codec_internal.h"
#include "codec_jpeg_prog.h"
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
int main(int argc,char**argv){
  FILE*f=fopen(argv[1],"rb"); fseek(f,0,SEEK_END); size_t n=ftell(f); fseek(f,0,SEEK_SET);
  uint8_t*d=malloc(n); fread(d,1,n,f); fclose(f);
  int luma = argc > 2 ? atoi(argv[2]) : 1;
  struct ip_decode_opts o; ip_decode_opts_default(&o); o.jpeg_luma_only=luma;
  struct ip_image img; struct ip_error e;
  for (int rep=0; rep<3; rep++) {
  double t0=now();
  ip_decode(d,n,&o,&img,NULL,&e); double t1=now();
  ip_image_free(&img);
  ip__png_strip_min=getenv("SMIN")?strtoull(getenv("SMIN"),0,10):(16u<<20);
  double t2=now();
  struct ip__jpeg_plan*pl=ip__jpeg_plan_strips(d,n,&o);
  double t3=now();
  if(getenv("CHUNK")) ip__jpeg_seq_chunk=strtoull(getenv("CHUNK"),0,10);
  uint32_t pc=ip__jpeg_plan_prep_count(pl);
  for(uint32_t k=0;k<pc;k++) ip__jpeg_plan_prep(pl,0,k);
  double t4=now();
  for(uint32_t k=0;k<pc;k++) ip__jpeg_plan_prep(pl,1,k);
  int r=ip__jpeg_plan_ready(pl);
  double t5=now();
  struct ip_image im=ip__jpeg_plan_shape(pl); im.stride=(size_t)im.width*im.channels; im.pixels=malloc(im.stride*im.height);
  memset(im.pixels,0,im.stride*im.height);
  double t6=now();
  for(uint32_t k=0;k<ip__jpeg_plan_count(pl);k++) if(ip__jpeg_plan_decode(pl,k,&im,&e)) {printf("strip %u fail %s\n",k,e.msg);break;}
  double t7=now();
  printf("whole %.3f | plan %.3f phase0 %.3f (%u chunks) phase1+ready %.3f (r=%d) strips %.3f (%u)\n",t1-t0,t3-t2,t4-t3,pc,t5-t4,r,t7-t6,ip__jpeg_plan_count(pl));
  free(im.pixels); ip__jpeg_plan_free(pl);
  }
  return 0;
}
